/* The floor of a refusal on this machine: a C epoll server that answers every read with one pre-built 503.
 *
 * No HTTP parsing, no Python: a request costs its read, its write and the kernel's loopback TCP work, which
 * any server on this core pays too. bench/refusal_cost.py serves it pinned to the server core and drives it
 * with the load generator, so its 503s per second bound what any server refuses per core here.
 *
 *   refusal_floor PORT
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

static const char ANSWER[] = "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
                             "content-length: 2\r\nretry-after: 1\r\n\r\n{}";

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: refusal_floor PORT\n");
        return 2;
    }
    int one = 1, listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1])),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(listener, (struct sockaddr *)&addr, sizeof addr) || listen(listener, 4096)) {
        perror("refusal_floor");
        return 1;
    }
    int epfd = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = listener}, ready[512];
    epoll_ctl(epfd, EPOLL_CTL_ADD, listener, &ev);
    static char buf[65536];
    for (;;) {
        int n = epoll_wait(epfd, ready, 512, -1);
        for (int i = 0; i < n; i++) {
            int fd = ready[i].data.fd;
            if (fd == listener) {
                int conn;
                while ((conn = accept4(listener, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    setsockopt(conn, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    struct epoll_event cev = {.events = EPOLLIN, .data.fd = conn};
                    epoll_ctl(epfd, EPOLL_CTL_ADD, conn, &cev);
                }
            } else if (read(fd, buf, sizeof buf) <= 0 || write(fd, ANSWER, sizeof ANSWER - 1) < 0) {
                close(fd);
            }
        }
    }
}

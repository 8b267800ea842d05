/* HTTP/1.1 load generator: N keep-alive connections, one request in flight on each.
 *
 * One epoll thread (pin it to its own core). Latencies are kept per status class (2xx, 503, other)
 * so overload runs can tell fast refusals from slow successes, which wrk's single histogram cannot.
 *
 *   loadgen HOST PORT PATH BODY_FILE CONNECTIONS WARMUP_S DURATION_S TIMEOUT_S [RATE]
 *
 * Without RATE it is closed-loop: each connection sends its next request as soon as an answer
 * arrives. With RATE it is open-loop: requests are due at a fixed RATE per second whatever the
 * server does, each goes out on a free connection (or waits for one), and its latency counts from
 * the moment it was due, so a slow server cannot hide its backlog (no coordinated omission).
 *
 * stdout: "start" when the measured window opens, "end" when it closes, then one JSON object.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { IDLE, CONNECTING, WRITING, READING, FREE };
enum { OK, REFUSED, OTHER, CLASSES };

typedef struct {
    int fd, state;
    size_t sent, len, cap;
    char *buf;
    double started;
} conn_t;

typedef struct {
    uint32_t *us;
    size_t n, cap;
} series_t;

static struct sockaddr_in addr;
static char *request;
static size_t request_len;
static int epfd;
static double window_open, window_close, timeout_s;
static series_t series[CLASSES];
static long statuses[600], socket_errors, timeouts;
static double rate;                 /* open-loop requests per second; 0 = closed loop */
static double next_due;             /* open loop: when the next request falls due */
static double *waiting;             /* open loop: due times of requests with no free connection yet */
static size_t waiting_head, waiting_len, waiting_cap;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void record(int cls, double seconds) {
    series_t *s = &series[cls];
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 65536;
        s->us = realloc(s->us, s->cap * sizeof *s->us);
    }
    s->us[s->n++] = (uint32_t)(seconds * 1e6);
}

static int in_window(double t) { return t >= window_open && t < window_close; }

static void watch(conn_t *c, uint32_t events, int op) {
    struct epoll_event ev = {.events = events, .data.ptr = c};
    epoll_ctl(epfd, op, c->fd, &ev);
}

static void open_conn(conn_t *c) {
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->state = CONNECTING;
    c->len = c->sent = 0;
    c->started = now();
    if (connect(c->fd, (struct sockaddr *)&addr, sizeof addr) < 0 && errno != EINPROGRESS) {
        c->state = IDLE;  /* retried on the next tick */
        close(c->fd);
        c->fd = -1;
        if (in_window(now())) socket_errors++;
        return;
    }
    watch(c, EPOLLOUT, EPOLL_CTL_ADD);
}

static void drop(conn_t *c, int count_error) {
    if (count_error && in_window(now())) socket_errors++;
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    c->state = IDLE;
}

static void try_write(conn_t *c) {
    while (c->sent < request_len) {
        ssize_t w = write(c->fd, request + c->sent, request_len - c->sent);
        if (w < 0) {
            if (errno != EAGAIN) return drop(c, 1);
            if (c->state != WRITING) watch(c, EPOLLIN | EPOLLOUT, EPOLL_CTL_MOD);
            c->state = WRITING;
            return;
        }
        c->sent += (size_t)w;
    }
    if (c->state == WRITING) watch(c, EPOLLIN, EPOLL_CTL_MOD);
    c->state = READING;
}

/* epoll_wait with a nanosecond timeout: millisecond ticks would send open-loop requests up to
 * 1 ms late and charge that to the server. Falls back to milliseconds on kernels before 5.11. */
static int wait_events(struct epoll_event *events, int max, double seconds) {
    static int coarse;
    if (seconds < 0) seconds = 0;
    if (seconds > 0.005) seconds = 0.005;
    if (!coarse) {
        struct timespec ts = {0, (long)(seconds * 1e9)};
        int n = epoll_pwait2(epfd, events, max, &ts, NULL);
        if (n >= 0 || errno != ENOSYS) return n;
        coarse = 1;
    }
    return epoll_wait(epfd, events, max, (int)(seconds * 1000 + 0.999));
}

/* Start a request due at ``due`` at once: the socket is almost always writable, so no epoll round trip. */
static void send_due(conn_t *c, double due) {
    c->sent = 0;
    c->len = 0;
    c->started = due;
    try_write(c);
}

static void push_waiting(double due) {
    if (waiting_len == waiting_cap) {
        size_t cap = waiting_cap ? 2 * waiting_cap : 4096;
        double *grown = malloc(cap * sizeof *grown);
        for (size_t i = 0; i < waiting_len; i++) grown[i] = waiting[(waiting_head + i) % waiting_cap];
        free(waiting);
        waiting = grown;
        waiting_cap = cap;
        waiting_head = 0;
    }
    waiting[(waiting_head + waiting_len++) % waiting_cap] = due;
}

/* A connection is ready for its next request: closed loop sends now, open loop takes the oldest due one. */
static void send_request(conn_t *c) {
    if (!rate) return send_due(c, now());
    if (!waiting_len) {
        c->state = FREE;
        return;
    }
    double due = waiting[waiting_head];
    waiting_head = (waiting_head + 1) % waiting_cap;
    waiting_len--;
    send_due(c, due);
}

/* Open loop: queue every request that fell due since the last call, then hand them to free connections. */
static void release_due(conn_t *conns, int nconns, double t) {
    for (; next_due <= t; next_due += 1.0 / rate) push_waiting(next_due);
    for (int i = 0; i < nconns && waiting_len; i++)
        if (conns[i].state == FREE) send_request(&conns[i]);
}

static void on_writable(conn_t *c) {
    if (c->state == CONNECTING) {
        int err = 0;
        socklen_t n = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &n);
        if (err) return drop(c, 1);
        watch(c, EPOLLIN, EPOLL_CTL_MOD);
        c->state = READING;  /* try_write moves it back to WRITING if the write blocks */
        return send_request(c);
    }
    try_write(c);
}

static const char *find_header(const char *head, const char *end, const char *name) {
    size_t n = strlen(name);
    for (const char *p = head; p && p < end; p = memchr(p, '\n', (size_t)(end - p))) {
        if (*p == '\n') p++;
        if ((size_t)(end - p) > n && strncasecmp(p, name, n) == 0) return p + n;
    }
    return NULL;
}

/* Length of the complete response at the start of buf, 0 if incomplete, -1 if unparseable. */
static long response_length(const char *buf, size_t len, int *status, int *closes) {
    const char *end = memmem(buf, len, "\r\n\r\n", 4);
    if (!end) return 0;
    size_t head = (size_t)(end - buf) + 4;
    if (sscanf(buf, "HTTP/1.%*d %d", status) != 1) return -1;
    const char *v = find_header(buf, end, "connection:");
    *closes = v && strncasecmp(v + strspn(v, " "), "close", 5) == 0;
    if ((v = find_header(buf, end, "content-length:"))) {
        size_t total = head + strtoul(v, NULL, 10);
        return len >= total ? (long)total : 0;
    }
    v = find_header(buf, end, "transfer-encoding:");
    if (!v || !strstr(v, "chunked")) return *closes ? 0 : (long)head;  /* body runs to EOF */
    size_t at = head;
    for (;;) {
        const char *line_end = memmem(buf + at, len - at, "\r\n", 2);
        if (!line_end) return 0;
        size_t size = strtoul(buf + at, NULL, 16);
        at = (size_t)(line_end - buf) + 2 + size + 2;
        if (at > len) return 0;
        if (size == 0) return (long)at;
    }
}

static void complete(conn_t *c, int status, double t) {
    if (in_window(t)) {
        statuses[status > 0 && status < 600 ? status : 0]++;
        int cls = status >= 200 && status < 300 ? OK : status == 503 ? REFUSED : OTHER;
        record(cls, t - c->started);
    }
}

static void on_readable(conn_t *c) {
    for (;;) {
        if (c->cap - c->len < 4096) {
            c->cap = c->cap ? 2 * c->cap : 16384;
            c->buf = realloc(c->buf, c->cap);
        }
        ssize_t r = read(c->fd, c->buf + c->len, c->cap - c->len);
        if (r == 0 && c->state == FREE) return drop(c, 0);  /* an idle keep-alive the server timed out */
        if (r == 0) {  /* peer closed: a response delimited by EOF, or an error */
            int status = 0, closes = 0;
            if (c->len && response_length(c->buf, c->len, &status, &closes) == 0 && closes) {
                complete(c, status, now());
                return drop(c, 0);
            }
            return drop(c, 1);
        }
        if (r < 0) {
            if (errno == EAGAIN) break;
            return drop(c, 1);
        }
        c->len += (size_t)r;
    }
    int status = 0, closes = 0;
    long n = response_length(c->buf, c->len, &status, &closes);
    if (n < 0) return drop(c, 1);
    if (n == 0) return;
    complete(c, status, now());
    if (closes) return drop(c, 0);
    send_request(c);
}

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

static double quantile_ms(series_t *s, double q) {
    if (!s->n) return -1;
    size_t i = (size_t)(q * (double)s->n);
    return s->us[i < s->n ? i : s->n - 1] / 1000.0;
}

static void print_series(const char *name, series_t *s) {
    qsort(s->us, s->n, sizeof *s->us, cmp_u32);
    printf("\"%s\":{\"count\":%zu,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f}", name, s->n,
           quantile_ms(s, 0.5), quantile_ms(s, 0.99), quantile_ms(s, 1.0));
}

int main(int argc, char **argv) {
    if (argc != 9 && argc != 10) {
        fprintf(stderr, "usage: %s HOST PORT PATH BODY_FILE CONNECTIONS WARMUP_S DURATION_S TIMEOUT_S [RATE]\n",
                argv[0]);
        return 2;
    }
    const char *host = argv[1], *path = argv[3];
    int port = atoi(argv[2]), nconns = atoi(argv[5]);
    double warmup = atof(argv[6]), duration = atof(argv[7]);
    timeout_s = atof(argv[8]);
    rate = argc == 10 ? atof(argv[9]) : 0;

    FILE *f = fopen(argv[4], "rb");
    if (!f) { perror(argv[4]); return 2; }
    fseek(f, 0, SEEK_END);
    long body_len = ftell(f);
    rewind(f);
    char *body = malloc((size_t)body_len);
    if (fread(body, 1, (size_t)body_len, f) != (size_t)body_len) { perror("read body"); return 2; }
    fclose(f);
    char head[512];
    int head_len = snprintf(head, sizeof head,
                            "POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
                            "Content-Length: %ld\r\n\r\n", path, host, port, body_len);
    request_len = (size_t)head_len + (size_t)body_len;
    request = malloc(request_len);
    memcpy(request, head, (size_t)head_len);
    memcpy(request + head_len, body, (size_t)body_len);

    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    inet_pton(AF_INET, host, &addr.sin_addr);
    epfd = epoll_create1(0);

    double t0 = now();
    next_due = t0;
    window_open = t0 + warmup;
    window_close = window_open + duration;
    conn_t *conns = calloc((size_t)nconns, sizeof *conns);
    for (int i = 0; i < nconns; i++) open_conn(&conns[i]);

    struct epoll_event events[1024];
    int announced = 0;
    for (;;) {
        double t = now();
        if (!announced && t >= window_open) { puts("start"); fflush(stdout); announced = 1; }
        if (t >= window_close) break;
        if (rate) release_due(conns, nconns, t);
        int n = wait_events(events, 1024, rate ? next_due - now() : 0.005);
        for (int i = 0; i < n; i++) {
            conn_t *c = events[i].data.ptr;
            if (c->fd < 0) continue;
            if (c->state == CONNECTING || (c->state == WRITING && events[i].events & EPOLLOUT))
                on_writable(c);
            else if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
                on_readable(c);
        }
        t = now();
        for (int i = 0; i < nconns; i++) {
            conn_t *c = &conns[i];
            if (c->state == IDLE) open_conn(c);
            else if (c->state != FREE && t - c->started > timeout_s) {
                if (in_window(t)) timeouts++;
                drop(c, 0);
                open_conn(c);
            }
        }
    }
    puts("end");
    fflush(stdout);
    for (size_t i = 0; i < waiting_len; i++)  /* due in the window, never sent: as good as timed out */
        if (in_window(waiting[(waiting_head + i) % waiting_cap])) timeouts++;

    printf("{\"connections\":%d,\"seconds\":%.3f,\"socket_errors\":%ld,\"timeouts\":%ld,\"statuses\":{",
           nconns, duration, socket_errors, timeouts);
    int first = 1;
    for (int s = 0; s < 600; s++)
        if (statuses[s]) { printf("%s\"%d\":%ld", first ? "" : ",", s, statuses[s]); first = 0; }
    printf("},");
    print_series("ok", &series[OK]);
    putchar(',');
    print_series("refused", &series[REFUSED]);
    putchar(',');
    print_series("other", &series[OTHER]);
    puts("}");
    return 0;
}

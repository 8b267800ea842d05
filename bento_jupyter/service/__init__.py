"""What a service is: APIs declared with ``@api``, their typed inputs and outputs."""

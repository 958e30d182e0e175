"""One construct per file; the stack only assembles them."""

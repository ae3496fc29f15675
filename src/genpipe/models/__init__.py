"""Models written as the course teaches them."""

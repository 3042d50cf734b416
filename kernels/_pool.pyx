# Placeholder while the pool family is being written.

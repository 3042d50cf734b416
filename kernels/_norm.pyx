# Placeholder while the norm family is being written.

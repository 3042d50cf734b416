# Placeholder while the conv family is being written.

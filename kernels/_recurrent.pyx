# Placeholder while the recurrent family is being written.

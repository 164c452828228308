"""Suite runners for `envci test`: command (on the runner), job (in the cluster), helm-test."""

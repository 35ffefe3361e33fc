"""Use-cases: one transaction each, calling the domain. `access_*` reads with a permission or
visibility check, `do_*` writes; `check_*` validates without touching the database."""

"""The UI's pages, one module a section (each defines ``router``)."""

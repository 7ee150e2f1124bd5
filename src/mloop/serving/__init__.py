"""Serving: a REST server speaking the Open Inference Protocol (``mloop serve``)."""

"""Foundation helpers that import nothing else of mloop: settings, URIs, ids, hashing, paths."""

"""The eFuse security policies shipped with medfw (``default.yml``)."""

"""Code shipped inside exported model folders (``mt_dnn/export.py``).

``modeling_mtdnn.py`` is copied next to the weights of every export and
imported by transformers from there (``trust_remote_code=True``), so it
imports torch and transformers only, never ``mt_dnn``.
"""

"""``sfhformer serve``: a local web app and JSON API (optional extra: ``pip install 'sfhformer[serve]'``)."""

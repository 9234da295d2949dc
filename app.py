"""Entry point of the browser app: ``python app.py [--host H] [--port P]``.

The app lives in :mod:`splatops.app`; ``splatops app`` starts the same thing.
"""

from splatops.app import main

if __name__ == "__main__":
    main()

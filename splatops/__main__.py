from splatops.cli import main

raise SystemExit(main())

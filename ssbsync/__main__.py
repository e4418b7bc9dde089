from ssbsync.cli import main

raise SystemExit(main())

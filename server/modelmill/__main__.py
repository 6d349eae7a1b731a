from modelmill.cli import main

raise SystemExit(main())

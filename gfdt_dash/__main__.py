from gfdt_dash.cli import main

raise SystemExit(main())

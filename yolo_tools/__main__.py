from yolo_tools.cli import main

raise SystemExit(main())

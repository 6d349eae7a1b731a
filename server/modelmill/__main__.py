from modelmill.safe_path import drop_working_folder

drop_working_folder()  # first: nothing from the working folder may shadow what the CLI imports next

from modelmill.cli import main  # noqa: E402

raise SystemExit(main())

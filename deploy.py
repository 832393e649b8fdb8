"""`python deploy.py MEMBER [--dry-run] [--diff] [--yes] ...`: the same deploy as `invoke deploy`."""

from hubfleet.cli import deploy_main

if __name__ == "__main__":
    deploy_main()

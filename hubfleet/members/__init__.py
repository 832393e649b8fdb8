"""A member's life: new, onboarding (bare VM to serving member), status, removal, and the templates of its files."""

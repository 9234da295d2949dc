"""Small helpers shared by every package: argument checks and seeding."""

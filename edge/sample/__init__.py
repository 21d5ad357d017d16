"""Sample: synthetic UK plates and registrations, for tests, golden images and training data."""

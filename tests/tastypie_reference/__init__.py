"""Stock django-tastypie 0.15.1 serving the seed's messageevent resource.

The differential test (tests/rest/test_tastypie_reference.py) runs it as a
subprocess server over the suite's PostgreSQL and asks it and the shim the
same random queries.
"""

"""The reverse proxy in front of HAPI: route table, upstream connection, URL rewriting."""

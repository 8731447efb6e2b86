// Package depcheck holds a test that keeps the library's dependency graph
// lean: importers of tenancy, router, provision, migrate and isotest must not
// inherit Docker, HTTP-server, metrics, JWT or code-generation dependencies.
package depcheck

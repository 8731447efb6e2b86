// Package console holds the admin console of the reference licensing server:
// its React + TypeScript source (src/, built with `npm ci && npm run build`)
// and the built files in dist/, embedded in the Go binary so that
// `go run ./examples/licensing` needs no Node.js. `make console-verify`
// rebuilds dist/ and fails if it differs from the committed copy.
//
// The package's test drives the console in headless Chromium against the
// real server and PostgreSQL (see console_test.go).
package console

import (
	"embed"
	"io/fs"
)

//go:embed all:dist
var dist embed.FS

// FS returns the built console: index.html and assets/ at its root.
func FS() fs.FS {
	sub, err := fs.Sub(dist, "dist")
	if err != nil {
		panic(err) // dist is embedded at compile time; Sub cannot fail
	}
	return sub
}

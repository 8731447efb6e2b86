package provision_test

import (
	"io/fs"
	"testing/fstest"
)

// mapFS is a set of migration files by name.
type mapFS map[string]string

func (m mapFS) FS() fs.FS {
	out := fstest.MapFS{}
	for k, v := range m {
		out[k] = &fstest.MapFile{Data: []byte(v)}
	}
	return out
}

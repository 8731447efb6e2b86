package migrate

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// NoTransactionDirective, on the first line of an up (or down) file, runs that
// migration outside a transaction (for CREATE INDEX CONCURRENTLY). Such
// migrations cannot be applied by ApplyTx; a Migrator runs them on their own
// under a session advisory lock and records the version right after. Put one
// statement in such a file (PostgreSQL runs a multi-statement query as one
// transaction) and make it idempotent (CREATE INDEX CONCURRENTLY IF NOT
// EXISTS): if the process dies between the statement and the record, the next
// run runs it again.
const NoTransactionDirective = "-- bulkhead:no-transaction"

// Migration is one versioned migration.
type Migration struct {
	// Version orders migrations; it is the NNNN of the file name.
	Version int64
	// Name is the part of the file name between the version and ".up.sql".
	Name string
	// Up and Down are the SQL texts. Down is empty when no down file exists.
	Up, Down string
	// Checksum is the hex SHA-256 of Up.
	Checksum string
	// NoTransaction is set when Up starts with NoTransactionDirective.
	NoTransaction bool
	// DownNoTransaction is set when Down starts with NoTransactionDirective.
	DownNoTransaction bool
}

var fileRE = regexp.MustCompile(`^(\d+)_([a-z0-9_]+)\.(up|down)\.sql$`)

// Load reads the migrations in the root of fsys, sorted by version. It rejects
// unexpected .sql file names, duplicate versions, down files without an up file
// and empty up files, naming the offending file.
func Load(fsys fs.FS) ([]*Migration, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("migrate: reading migrations: %w", err)
	}
	byVersion := map[int64]*Migration{}
	downs := map[int64]string{}
	for _, e := range entries {
		if e.IsDir() || path.Ext(e.Name()) != ".sql" {
			continue
		}
		m := fileRE.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("migrate: file %q: name must look like 0001_create_things.up.sql (lowercase, digits, '_')", e.Name())
		}
		v, err := strconv.ParseInt(m[1], 10, 64)
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("migrate: file %q: version must be a positive integer", e.Name())
		}
		b, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			return nil, fmt.Errorf("migrate: reading %q: %w", e.Name(), err)
		}
		text := string(b)
		if m[3] == "down" {
			if _, dup := downs[v]; dup {
				return nil, fmt.Errorf("migrate: file %q: version %d has two down files", e.Name(), v)
			}
			downs[v] = text
			continue
		}
		if prev, dup := byVersion[v]; dup {
			return nil, fmt.Errorf("migrate: file %q: version %d is also used by %q", e.Name(), v, prev.Name)
		}
		if strings.TrimSpace(text) == "" {
			return nil, fmt.Errorf("migrate: file %q is empty", e.Name())
		}
		sum := sha256.Sum256(b)
		byVersion[v] = &Migration{
			Version:       v,
			Name:          m[2],
			Up:            text,
			Checksum:      hex.EncodeToString(sum[:]),
			NoTransaction: strings.HasPrefix(strings.TrimSpace(text), NoTransactionDirective),
		}
	}
	for v, down := range downs {
		m, ok := byVersion[v]
		if !ok {
			return nil, fmt.Errorf("migrate: down migration for version %d has no up migration", v)
		}
		m.Down = down
		m.DownNoTransaction = strings.HasPrefix(strings.TrimSpace(down), NoTransactionDirective)
	}
	out := make([]*Migration, 0, len(byVersion))
	for _, m := range byVersion {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}

// Latest returns the highest version in ms, or 0 when ms is empty.
func Latest(ms []*Migration) int64 {
	if len(ms) == 0 {
		return 0
	}
	return ms[len(ms)-1].Version
}

func (m *Migration) String() string { return fmt.Sprintf("%04d_%s", m.Version, m.Name) }

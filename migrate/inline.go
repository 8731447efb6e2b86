package migrate

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// simpleDB lets the sqlc-generated control-plane queries of a migration step
// travel inside the step's one simple-protocol query: Exec appends the
// generated SQL text with its arguments inlined as literals, as pgx's own
// QueryExecModeSimpleProtocol does. This is the only place bulkhead inlines
// arguments; it accepts only the types the step's queries use.
type simpleDB struct{ b *strings.Builder }

func (d *simpleDB) Exec(_ context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	s, err := inline(sql, args)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	d.b.WriteString(s)
	d.b.WriteString(";\n")
	return pgconn.CommandTag{}, nil
}

func (d *simpleDB) Query(context.Context, string, ...any) (pgx.Rows, error) {
	return nil, errors.New("migrate: simpleDB inlines :exec queries only")
}

func (d *simpleDB) QueryRow(context.Context, string, ...any) pgx.Row { return errRow{} }

// inline replaces the placeholders $1..$n of sql, outside quoted strings,
// quoted identifiers and comments, by literals of args.
func inline(sql string, args []any) (string, error) {
	var b strings.Builder
	for i := 0; i < len(sql); {
		c := sql[i]
		switch {
		case c == '\'' || c == '"':
			j := i + 1
			for j < len(sql) {
				if sql[j] == c {
					if j+1 < len(sql) && sql[j+1] == c {
						j += 2
						continue
					}
					break
				}
				j++
			}
			if j >= len(sql) {
				return "", fmt.Errorf("migrate: inline: unterminated quote in %q", sql)
			}
			b.WriteString(sql[i : j+1])
			i = j + 1
		case c == '-' && i+1 < len(sql) && sql[i+1] == '-':
			j := strings.IndexByte(sql[i:], '\n')
			if j < 0 {
				j = len(sql) - i
			}
			b.WriteString(sql[i : i+j])
			i += j
		case c == '$' && i+1 < len(sql) && sql[i+1] >= '0' && sql[i+1] <= '9':
			j := i + 1
			for j < len(sql) && sql[j] >= '0' && sql[j] <= '9' {
				j++
			}
			n, _ := strconv.Atoi(sql[i+1 : j])
			if n < 1 || n > len(args) {
				return "", fmt.Errorf("migrate: inline: placeholder $%d with %d arguments", n, len(args))
			}
			lit, err := literal(args[n-1])
			if err != nil {
				return "", fmt.Errorf("migrate: inline: argument $%d: %w", n, err)
			}
			b.WriteString(lit)
			i = j
		default:
			b.WriteByte(c)
			i++
		}
	}
	return b.String(), nil
}

// literal renders v as a SQL literal. Strings use the E” form with quotes and
// backslashes doubled, so the result does not depend on
// standard_conforming_strings.
func literal(v any) (string, error) {
	switch x := v.(type) {
	case nil:
		return "NULL", nil
	case int64:
		return intLiteral(x), nil
	case int32:
		return intLiteral(int64(x)), nil
	case bool:
		return strconv.FormatBool(x), nil
	case string:
		return quoteString(x)
	case *string:
		if x == nil {
			return "NULL", nil
		}
		return quoteString(*x)
	case []int64:
		parts := make([]string, len(x))
		for i, n := range x {
			parts[i] = strconv.FormatInt(n, 10)
		}
		return "'{" + strings.Join(parts, ",") + "}'", nil
	}
	return "", fmt.Errorf("type %T cannot be inlined", v)
}

// intLiteral parenthesizes negative numbers: "$1" after a minus sign would
// otherwise render as "--5", a comment (the shape of pgx's CVE-2024-27289).
func intLiteral(n int64) string {
	if n < 0 {
		return "(" + strconv.FormatInt(n, 10) + ")"
	}
	return strconv.FormatInt(n, 10)
}

func quoteString(s string) (string, error) {
	if strings.IndexByte(s, 0) >= 0 {
		return "", errors.New("string contains a NUL byte")
	}
	return "E'" + strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), `'`, `''`) + "'", nil
}

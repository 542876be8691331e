package storagetest

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	_ "modernc.org/sqlite" // database/sql driver "sqlite"
)

// Schema describes the schema of the database at databaseURL (a
// postgres:// URL, or sqlite://PATH) as sorted lines of text, one per
// table column, index, constraint and sequence, leaving out the tables
// named in skip. Two databases have the same Schema when they have the
// same tables, columns (name, type, nullability, default), indexes
// (uniqueness, columns, predicate), foreign keys and sequences, however
// the statements that made them were written or ordered: it is for
// comparing a migrated schema with the one another path produced.
func Schema(t testing.TB, databaseURL string, skip ...string) string {
	t.Helper()
	var (
		lines []string
		err   error
	)
	if path, ok := strings.CutPrefix(databaseURL, "sqlite://"); ok {
		lines, err = sqliteSchema(t.Context(), path)
	} else {
		lines, err = postgresSchema(t.Context(), databaseURL)
	}
	if err != nil {
		t.Fatalf("storagetest: read the schema: %v", err)
	}
	lines = slices.DeleteFunc(lines, func(l string) bool {
		table, _, _ := strings.Cut(l, " ")
		return slices.Contains(skip, table)
	})
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

func sqliteSchema(ctx context.Context, path string) ([]string, error) {
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	var lines []string
	add := func(query string, args []any, format func(vals []sql.NullString) string) error {
		rows, err := db.QueryContext(ctx, query, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		cols, err := rows.Columns()
		if err != nil {
			return err
		}
		for rows.Next() {
			vals := make([]sql.NullString, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				return err
			}
			lines = append(lines, format(vals))
		}
		return rows.Err()
	}
	var tables []string
	if err := add(`SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\_%' ESCAPE '\'`, nil,
		func(v []sql.NullString) string { tables = append(tables, v[0].String); return v[0].String + " table" }); err != nil {
		return nil, err
	}
	for _, table := range tables {
		if err := add(`SELECT name, type, "notnull", dflt_value, pk FROM pragma_table_info(?)`, []any{table},
			func(v []sql.NullString) string {
				return fmt.Sprintf("%s column %s %s notnull=%s default=%s pk=%s", table, v[0].String, v[1].String, v[2].String, nullable(v[3]), v[4].String)
			}); err != nil {
			return nil, err
		}
		if err := add(`SELECT l.name, l."unique", l.origin,
				(SELECT group_concat(name, ',') FROM (SELECT name FROM pragma_index_info(l.name) ORDER BY seqno)),
				CASE WHEN l.partial THEN (SELECT substr(sql, instr(sql, ' WHERE ') + 7) FROM sqlite_master WHERE name = l.name) END
			FROM pragma_index_list(?) l`, []any{table},
			func(v []sql.NullString) string {
				return fmt.Sprintf("%s index %s unique=%s origin=%s (%s) where=%s", table, v[0].String, v[1].String, v[2].String, v[3].String, nullable(v[4]))
			}); err != nil {
			return nil, err
		}
		if err := add(`SELECT "table", "from", "to", on_update, on_delete FROM pragma_foreign_key_list(?)`, []any{table},
			func(v []sql.NullString) string {
				return fmt.Sprintf("%s foreign key (%s) references %s(%s) on update %s on delete %s", table, v[1].String, v[0].String, v[2].String, v[3].String, v[4].String)
			}); err != nil {
			return nil, err
		}
	}
	return lines, nil
}

func postgresSchema(ctx context.Context, databaseURL string) ([]string, error) {
	conn, err := connect(ctx, databaseURL)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	var lines []string
	for _, q := range []string{
		`SELECT table_name || ' table' FROM information_schema.tables
			WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'`,
		`SELECT format('%s column %s %s(%s) nullable=%s default=%s identity=%s', table_name, column_name, data_type,
				coalesce(character_maximum_length::text, '-'), is_nullable, coalesce(column_default, '-'), is_identity)
			FROM information_schema.columns WHERE table_schema = current_schema()`,
		`SELECT tablename || ' index ' || indexname || ': ' || indexdef FROM pg_indexes
			WHERE schemaname = current_schema()`,
		`SELECT format('%s constraint %s %s: %s', c.conrelid::regclass, c.conname, c.contype, pg_get_constraintdef(c.oid))
			FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
			WHERE n.nspname = current_schema() AND c.contype IN ('p', 'u', 'f', 'c')`,
		`SELECT format('%s sequence %s %s owned by %s', coalesce(d.refobjid::regclass::text, '-'), s.sequencename, s.data_type,
				coalesce(a.attname, '-'))
			FROM pg_sequences s
			JOIN pg_class sc ON sc.relname = s.sequencename
			JOIN pg_namespace n ON n.oid = sc.relnamespace AND n.nspname = s.schemaname
			LEFT JOIN pg_depend d ON d.objid = sc.oid AND d.classid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
			LEFT JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
			WHERE s.schemaname = current_schema()`,
	} {
		rows, err := conn.Query(ctx, q)
		if err != nil {
			return nil, err
		}
		texts, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return nil, err
		}
		lines = append(lines, texts...)
	}
	return lines, nil
}

func nullable(s sql.NullString) string {
	if !s.Valid {
		return "NULL"
	}
	return s.String
}

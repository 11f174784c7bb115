package store

import (
	"io/fs"

	"github.com/pressly/goose/v3/lock"

	"github.com/sendwerk/sendwerk/db"
)

func migrationsFS() fs.FS {
	sub, err := fs.Sub(db.Migrations, "migrations")
	if err != nil {
		panic(err) // the embedded directory is fixed at build time
	}
	return sub
}

// mustLocker serialises concurrent migrations from several processes with an advisory lock.
func mustLocker() lock.SessionLocker {
	l, err := lock.NewPostgresSessionLocker()
	if err != nil {
		panic(err) // only fails on invalid options, and we pass none
	}
	return l
}

// Package db holds the SQL migrations, embedded so `sendwerk migrate` needs no files beside the binary.
package db

import "embed"

// Migrations are goose SQL migrations, applied in file-name order.
//
//go:embed migrations/*.sql
var Migrations embed.FS

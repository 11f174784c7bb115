//go:build !linux

package smtptest

import "testing"

// NewBlackholeAddr needs Linux's behaviour of dropping SYNs to a full accept queue.
func NewBlackholeAddr(t testing.TB) string {
	t.Skip("smtptest: NewBlackholeAddr needs Linux")
	return ""
}

package secret

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
)

const (
	keyA = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
	keyB = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA="
)

func TestBox(t *testing.T) {
	t.Parallel()

	t.Run("RoundTrip", func(t *testing.T) {
		box, err := NewBox(keyA)
		require.NoError(t, err)
		id, ct := box.Seal([]byte("hunter2"), "connector:con_1:password")
		require.Equal(t, box.CurrentKeyID(), id)
		require.False(t, bytes.Contains(ct, []byte("hunter2")))
		pt, err := box.Open(id, ct, "connector:con_1:password")
		require.NoError(t, err)
		require.Equal(t, "hunter2", string(pt))
	})
	t.Run("NoncesDiffer", func(t *testing.T) {
		box, _ := NewBox(keyA)
		_, a := box.Seal([]byte("x"), "c")
		_, b := box.Seal([]byte("x"), "c")
		require.NotEqual(t, a, b)
	})
	t.Run("ContextIsBound", func(t *testing.T) {
		box, _ := NewBox(keyA)
		id, ct := box.Seal([]byte("hunter2"), "connector:con_1:password")
		_, err := box.Open(id, ct, "connector:con_2:password")
		require.ErrorIs(t, err, ErrCorrupt)
	})
	t.Run("TamperingDetected", func(t *testing.T) {
		box, _ := NewBox(keyA)
		id, ct := box.Seal([]byte("hunter2"), "c")
		ct[len(ct)-1] ^= 1
		_, err := box.Open(id, ct, "c")
		require.ErrorIs(t, err, ErrCorrupt)
	})
	t.Run("RotationOpensOldSecrets", func(t *testing.T) {
		old, _ := NewBox(keyA)
		id, ct := old.Seal([]byte("hunter2"), "c")
		rotated, err := NewBox(keyB, keyA)
		require.NoError(t, err)
		require.NotEqual(t, id, rotated.CurrentKeyID())
		pt, err := rotated.Open(id, ct, "c")
		require.NoError(t, err)
		require.Equal(t, "hunter2", string(pt))

		onlyNew, _ := NewBox(keyB)
		_, err = onlyNew.Open(id, ct, "c")
		require.ErrorIs(t, err, ErrUnknownKey)
	})
	t.Run("RejectsBadKeys", func(t *testing.T) {
		_, err := NewBox("short")
		require.Error(t, err)
		require.NotContains(t, err.Error(), "short")
	})
}

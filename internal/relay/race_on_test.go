//go:build race

package relay

// raceEnabled: the race detector changes allocation behaviour, so allocation bounds are
// not asserted under it (the functional checks still run).
const raceEnabled = true

package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// cpuGroup measures the CPU time of a set of processes and all their descendants.
//
// Preferred: a cgroup of its own (v1 cpuacct, else v2 cpu.stat). The kernel charges every
// task that ever ran in the group, including processes that exited during the run
// (Postfix's smtpd/cleanup/smtp come and go; PostgreSQL backends end with their
// connections), so nothing is lost. Processes are put in before the measured work starts;
// their children inherit the group.
//
// Fallback (no writable cgroup): the /proc utime+stime+cutime+cstime of the tracked roots
// and all their live descendants. Children a parent has reaped stay counted in its cutime,
// but processes reparented to init are lost, so this undercounts Postfix a little.
type cpuGroup struct {
	name  string
	dir   string // cgroup directory; empty in fallback mode
	v2    bool
	roots func() []int
	pids  []int
}

// cgroupRoot finds a cgroup hierarchy whose CPU usage we can read: the v1 cpuacct
// controller, or a v2 hierarchy (cpu.stat is always there).
func cgroupRoot() (dir string, v2 bool) {
	if _, err := os.Stat("/sys/fs/cgroup/cpuacct/cpuacct.usage"); err == nil {
		return "/sys/fs/cgroup/cpuacct", false
	}
	for _, d := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
		if _, err := os.Stat(filepath.Join(d, "cgroup.controllers")); err == nil {
			return d, true
		}
	}
	return "", false
}

// newCPUGroup creates the group; with no usable cgroup it falls back to /proc accounting.
func newCPUGroup(name string) *cpuGroup {
	g := &cpuGroup{name: name}
	root, v2 := cgroupRoot()
	if root == "" || os.Geteuid() != 0 {
		return g
	}
	dir := filepath.Join(root, fmt.Sprintf("swbench-%d-%s", os.Getpid(), name))
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return g
	}
	// Probe that we may move a process in (containers often mount cgroupfs read-only).
	probe := exec.Command("sh", "-c", "echo $$ > "+filepath.Join(dir, "cgroup.procs"))
	if err := probe.Run(); err != nil {
		_ = os.Remove(dir)
		return g
	}
	g.dir, g.v2 = dir, v2
	return g
}

// method says how this group is measured, for the report.
func (g *cpuGroup) method() string {
	switch {
	case g.dir != "" && g.v2:
		return "cgroup v2 cpu.stat usage_usec"
	case g.dir != "":
		return "cgroup v1 cpuacct.usage"
	}
	return "/proc utime+stime+cutime+cstime of the process trees"
}

// add puts a running process (all its threads) in the group; its later children follow.
func (g *cpuGroup) add(pid int) error {
	g.pids = append(g.pids, pid)
	if g.dir == "" {
		return nil
	}
	return os.WriteFile(filepath.Join(g.dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644)
}

// command returns a command that enters the group before it execs, so even a program that
// daemonizes (postfix start) runs with all its descendants inside.
func (g *cpuGroup) command(name string, args ...string) *exec.Cmd {
	if g.dir == "" {
		return exec.Command(name, args...)
	}
	script := `echo $$ > "$0" && exec "$@"`
	return exec.Command("sh", append([]string{"-c", script, filepath.Join(g.dir, "cgroup.procs"), name}, args...)...)
}

// seconds is the CPU time (user + system) charged to the group so far.
func (g *cpuGroup) seconds() float64 {
	if g.dir != "" {
		if g.v2 {
			b, err := os.ReadFile(filepath.Join(g.dir, "cpu.stat"))
			if err != nil {
				return 0
			}
			for _, line := range strings.Split(string(b), "\n") {
				if v, ok := strings.CutPrefix(line, "usage_usec "); ok {
					n, _ := strconv.ParseFloat(v, 64)
					return n / 1e6
				}
			}
			return 0
		}
		b, err := os.ReadFile(filepath.Join(g.dir, "cpuacct.usage"))
		if err != nil {
			return 0
		}
		n, _ := strconv.ParseFloat(strings.TrimSpace(string(b)), 64)
		return n / 1e9
	}
	roots := append([]int(nil), g.pids...)
	if g.roots != nil {
		roots = append(roots, g.roots()...)
	}
	return procTreeSeconds(roots)
}

// close moves what is left back to the root group and removes the group.
func (g *cpuGroup) close() {
	if g.dir == "" {
		return
	}
	b, _ := os.ReadFile(filepath.Join(g.dir, "cgroup.procs"))
	for _, p := range strings.Fields(string(b)) {
		_ = os.WriteFile(filepath.Join(filepath.Dir(g.dir), "cgroup.procs"), []byte(p), 0o644)
	}
	_ = os.Remove(g.dir)
}

// procTreeSeconds sums utime+stime+cutime+cstime over the roots and their live descendants.
func procTreeSeconds(roots []int) float64 {
	children := map[int][]int{}
	ticks := map[int]float64{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// Fields after the command name, which is in parentheses and may hold spaces.
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) < 15 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		children[ppid] = append(children[ppid], pid)
		var t float64
		for _, i := range []int{11, 12, 13, 14} { // utime stime cutime cstime
			v, _ := strconv.ParseFloat(f[i], 64)
			t += v
		}
		ticks[pid] = t
	}
	seen := map[int]bool{}
	var total float64
	var walk func(int)
	walk = func(pid int) {
		if seen[pid] {
			return
		}
		seen[pid] = true
		total += ticks[pid]
		for _, c := range children[pid] {
			walk(c)
		}
	}
	for _, r := range roots {
		walk(r)
	}
	return total / 100 // USER_HZ is 100 on Linux
}

package stepper

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// oomKills is how many processes the kernel's OOM killer has killed in the
// container's cgroup: the oom_kill counter of cgroup v2's memory.events, or
// of cgroup v1's memory.oom_control. -1 when neither can be read: the count
// is best effort, and a step killed by SIGKILL is then reported as such.
func oomKills(cgroup string) int64 {
	for _, f := range []string{"memory.events", "memory/memory.oom_control"} {
		if n, ok := readCounter(filepath.Join(cgroup, f), "oom_kill"); ok {
			return n
		}
	}
	return -1
}

func readCounter(path, key string) (int64, bool) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if ok && k == key {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

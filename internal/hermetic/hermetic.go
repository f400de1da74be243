// Package hermetic starts a step's process with no network, as Tekton's
// entrypoint does for a TaskRun annotated
// experimental.tekton.dev/execution-mode: hermetic: in new user and network
// namespaces, so that it sees only a loopback interface (down) and cannot
// join another network namespace again.
package hermetic

import (
	"bufio"
	"errors"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// Cloneflags are the namespaces a hermetic process starts in. The network
// namespace is the point; the user namespace lets an unprivileged process
// make it, and leaves even a root step no capability over the namespaces
// outside, so it cannot setns(2) its way back to the network. Tekton's
// entrypoint also makes new mount and PID namespaces; those change nothing
// about the network, and a PID namespace would make the step its PID 1,
// which ignores a SIGTERM it has no handler for.
const Cloneflags = syscall.CLONE_NEWUSER | syscall.CLONE_NEWNET

// Linux capability numbers (linux/capability.h).
const (
	capSetgid = 6
	capSetuid = 7
)

// Isolate sets attr so that the process it starts runs in new user and
// network namespaces, every user and group id it can hold keeping its
// number there (what Tekton maps, "everything", limited to the ids that
// exist in this namespace). A process with CAP_SETUID / CAP_SETGID maps
// all of this namespace's ids; one without maps its own effective id only,
// which is all the kernel lets it, as `unshare -n` as that user would.
func Isolate(attr *syscall.SysProcAttr) {
	attr.Cloneflags |= Cloneflags
	caps := effectiveCaps()
	uid, gid := os.Geteuid(), os.Getegid()
	attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: uid, HostID: uid, Size: 1}}
	if caps&(1<<capSetuid) != 0 {
		if m := identityMap("/proc/self/uid_map"); m != nil {
			attr.UidMappings = m
		}
	}
	// Without CAP_SETGID the kernel takes a gid map only once setgroups(2)
	// is denied in the new namespace.
	attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: gid, HostID: gid, Size: 1}}
	attr.GidMappingsEnableSetgroups = false
	if caps&(1<<capSetgid) != 0 {
		if m := identityMap("/proc/self/gid_map"); m != nil {
			attr.GidMappings = m
			// A namespace whose parent denies setgroups must deny it too.
			attr.GidMappingsEnableSetgroups = readTrim("/proc/self/setgroups") != "deny"
		}
	}
}

// identityMap maps every range of this namespace's id map (the ids that
// exist here) to itself; nil when the map cannot be read.
func identityMap(path string) []syscall.SysProcIDMap {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []syscall.SysProcIDMap
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) != 3 {
			return nil
		}
		inside, err1 := strconv.ParseUint(fields[0], 10, 32)
		size, err2 := strconv.ParseUint(fields[2], 10, 32)
		if err1 != nil || err2 != nil || size == 0 {
			return nil
		}
		out = append(out, syscall.SysProcIDMap{ContainerID: int(inside), HostID: int(inside), Size: int(size)})
	}
	if sc.Err() != nil {
		return nil
	}
	return out
}

// effectiveCaps is this process's effective capability set (CapEff of
// /proc/self/status); 0 when it cannot be read.
func effectiveCaps() uint64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(data)) {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			caps, _ := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return caps
		}
	}
	return 0
}

// Error is why a hermetic process could not be started: its namespaces
// could not be made. Its message says what this machine lacks.
type Error struct {
	// Err is the error of starting the process.
	Err error
	// Found lists what was seen to stand in the way, e.g.
	// "user.max_user_namespaces is 0".
	Found []string
}

// Requirement is what running a step hermetically needs, for messages and
// the README.
const Requirement = "running a step without network needs new user and network namespaces: " +
	"unprivileged user namespaces enabled (user.max_user_namespaces > 0; kernel.unprivileged_userns_clone=1 " +
	"on kernels that have it; kernel.apparmor_restrict_unprivileged_userns=0 where AppArmor has it) " +
	"and a seccomp profile that allows clone/unshare with CLONE_NEWUSER " +
	"(podman's default does; Docker's and containerd's RuntimeDefault refuse it without CAP_SYS_ADMIN)"

func (e *Error) Error() string {
	msg := "hermetic task: cannot create the step's user and network namespaces: " + errnoText(e.Err)
	if len(e.Found) > 0 {
		msg += " (" + strings.Join(e.Found, "; ") + ")"
	}
	return msg + "; " + Requirement + "; the step was not run"
}

func (e *Error) Unwrap() error { return e.Err }

// StartError explains the error of starting a hermetic process. When this
// machine cannot make the namespaces (Check fails) it is an *Error saying
// what it lacks; otherwise the error was the step's own (its program not
// found) and is returned as it is.
func StartError(err error) error {
	if err == nil {
		return nil
	}
	var he *Error
	if errors.As(err, &he) {
		return err
	}
	if cerr := Check(); cerr != nil {
		cerr.(*Error).Err = err
		return cerr
	}
	return err
}

// errnoText is the kernel's words for the error, without Go's "fork/exec
// PATH:" prefix, which names the step's program and not what failed.
func errnoText(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	return err.Error()
}

// checkPath is a program that does not exist: Check's child fails to exec
// it, harmlessly, once its namespaces and id maps are made.
const checkPath = "/proc/self/pod-runner-hermetic-check"

// Check starts a process in hermetic namespaces; nil means hermetic steps
// can run here, else an *Error says what is missing.
func Check() error {
	attr := &syscall.SysProcAttr{}
	Isolate(attr)
	pid, err := syscall.ForkExec(checkPath, []string{"hermetic-check"}, &syscall.ProcAttr{Sys: attr})
	switch {
	case err == nil:
		// Not expected, the program does not exist; reap it all the same.
		var ws syscall.WaitStatus
		_, _ = syscall.Wait4(pid, &ws, 0, nil)
		return nil
	case errors.Is(err, syscall.ENOENT):
		return nil
	default:
		return &Error{Err: err, Found: Obstacles()}
	}
}

// Obstacles lists what this machine shows that stands in the way of
// unprivileged user namespaces.
func Obstacles() []string {
	var found []string
	if v := readTrim("/proc/sys/user/max_user_namespaces"); v == "0" {
		found = append(found, "user.max_user_namespaces is 0")
	}
	if v := readTrim("/proc/sys/kernel/unprivileged_userns_clone"); v == "0" {
		found = append(found, "kernel.unprivileged_userns_clone is 0")
	}
	if v := readTrim("/proc/sys/kernel/apparmor_restrict_unprivileged_userns"); v == "1" {
		found = append(found, "kernel.apparmor_restrict_unprivileged_userns is 1")
	}
	if _, err := os.Stat("/proc/self/ns/user"); errors.Is(err, os.ErrNotExist) {
		found = append(found, "the kernel has no user namespaces (/proc/self/ns/user is missing)")
	}
	if seccompFiltered() {
		found = append(found, "a seccomp filter is active (Seccomp: 2 in /proc/self/status), which may refuse CLONE_NEWUSER")
	}
	return found
}

func seccompFiltered() bool {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return false
	}
	for line := range strings.Lines(string(data)) {
		if v, ok := strings.CutPrefix(line, "Seccomp:"); ok {
			return strings.TrimSpace(v) == "2"
		}
	}
	return false
}

func readTrim(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(data))
}

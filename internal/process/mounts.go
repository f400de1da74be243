package process

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/e7763abc/pod-runner/internal/mountns"
	"github.com/e7763abc/pod-runner/proto/planpb"
)

// tektonPaths tells whether the task's steps run in mount namespaces with
// Tekton's paths: they need them, and this process can make them. When it
// cannot, the log says so once and the steps see host directories.
func (l *Launcher) tektonPaths(t *planpb.Task) bool {
	why := needsTektonPaths(t)
	if why == "" {
		return false
	}
	if l.opts.Self == "" || !mountns.Available() {
		l.noMounts.Do(func() {
			l.log.write(fmt.Appendf(nil, "pod-runner: task %q needs Tekton's container paths (%s), but mount namespaces need root (CAP_SYS_ADMIN): its steps see host directories, substituted\n", t.GetName(), why))
		})
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.nsRoot == "" {
		root, scratch := filepath.Join(l.state, "root"), filepath.Join(l.state, "scratch")
		for _, d := range []string{root, scratch} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return false
			}
		}
		l.nsRoot, l.nsScratch = root, scratch
	}
	return true
}

// Package credsinit gives a step the credentials of its ServiceAccount's
// annotated Secrets as Tekton's entrypoint does (docs/auth.md): Tekton's
// own writers turn the Secrets mounted under /tekton/creds-secrets into
// ~/.gitconfig, ~/.git-credentials, ~/.ssh and ~/.docker/config.json in
// /tekton/creds, which are then copied into the step's HOME.
package credsinit

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/tektoncd/pipeline/pkg/credentials/dockercreds"
	"github.com/tektoncd/pipeline/pkg/credentials/gitcreds"
	credwriter "github.com/tektoncd/pipeline/pkg/credentials/writer"
)

// Dir is Tekton's /tekton/creds, where the credentials are written first
// ($(credentials.path)); the files there name it.
const Dir = "/tekton/creds"

// Write writes the credentials args describe (Tekton's entrypoint flags
// without their dash: "basic-git=SECRET=URL", "ssh-git=...",
// "basic-docker=...", "docker-config=SECRET", "docker-cfg=SECRET") into
// credsDir, then copies them into home. Nothing is written for no args.
func Write(args []string, credsDir, home string) error {
	if len(args) == 0 {
		return nil
	}
	// The writers keep what the flags set in package state, as Tekton's
	// entrypoint (one process per step) parses them once.
	fs := flag.NewFlagSet("creds-init", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	gitcreds.AddFlags(fs)
	dockercreds.AddFlags(fs)
	flags := make([]string, len(args))
	for i, a := range args {
		flags[i] = "-" + a
	}
	if err := fs.Parse(flags); err != nil {
		return fmt.Errorf("credentials: %w", err)
	}
	if err := os.MkdirAll(credsDir, 0o777); err != nil {
		return fmt.Errorf("credentials: %w", err)
	}
	for _, w := range []credwriter.Writer{dockercreds.NewBuilder(), gitcreds.NewBuilder()} {
		if err := w.Write(credsDir); err != nil {
			return fmt.Errorf("credentials: %w", err)
		}
	}
	for _, name := range credwriter.CredsInitCredentials {
		if err := copyTree(filepath.Join(credsDir, name), filepath.Join(home, name)); err != nil {
			return fmt.Errorf("credentials: copy %s into %s: %w", name, home, err)
		}
	}
	return nil
}

// copyTree copies src to dst as Tekton's CopyCredsToHome does (directories
// 0700, files 0600); a missing src is nothing to copy.
func copyTree(src, dst string) error {
	info, err := os.Lstat(src)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if info.IsDir() {
		if err := os.MkdirAll(dst, 0o700); err != nil {
			return err
		}
		entries, err := os.ReadDir(src)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if err := copyTree(filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())); err != nil {
				return err
			}
		}
		return nil
	}
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, data, 0o600)
}

package podspec

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/tektoncd/pipeline/pkg/apis/config"
	"github.com/tektoncd/pipeline/pkg/credentials/dockercreds"
	"github.com/tektoncd/pipeline/pkg/credentials/gitcreds"
	credmatcher "github.com/tektoncd/pipeline/pkg/credentials/matcher"
	corev1 "k8s.io/api/core/v1"

	"github.com/e7763abc/pod-runner/internal/credsinit"
	"github.com/e7763abc/pod-runner/internal/load"
	"github.com/e7763abc/pod-runner/internal/podlayout"
	"github.com/e7763abc/pod-runner/proto/planpb"
)

// CredentialSource reads the Secrets a ServiceAccount lists, for Tekton's
// credential initialisation (pkg/pod credsInit): those it lists that do
// not exist are left out, as Tekton leaves them.
type CredentialSource interface {
	ServiceAccountSecrets(ctx context.Context, namespace, serviceAccount string) ([]*corev1.Secret, error)
}

// taskCreds are what a task's steps need of its ServiceAccount's
// annotated Secrets (tekton.dev/git-*, tekton.dev/docker-*), as Tekton's
// credsInit makes them: each matching Secret a volume mounted at
// /tekton/creds-secrets/NAME into the task's steps only (never its
// sidecars, nor another task's containers), and the entrypoint's
// credential flags for `pod-runner step --creds`, which writes the
// files with Tekton's own writers (internal/credsinit). The Pod holds the
// Secrets' names; the kubelet reads their data.
type taskCreds struct {
	args   []string
	mounts []corev1.VolumeMount
}

// credentials reads the task's ServiceAccount and its Secrets; nil when
// there is no source, creds-init is disabled, or nothing matches.
func (b *builder) credentials(t *planpb.Task) (*taskCreds, error) {
	if b.opts.Credentials == nil || b.featureFlags().DisableCredsInit {
		return nil, nil
	}
	sa := ""
	if tr := b.c.TaskRuns[t.GetName()]; tr != nil {
		sa = tr.Spec.ServiceAccountName
	}
	if sa == "" {
		sa = "default" // Tekton's config.DefaultServiceAccountValue
	}
	secrets, err := b.opts.Credentials.ServiceAccountSecrets(b.ctx, b.plan.GetNamespace(), sa)
	if err != nil {
		return nil, load.Errorf("", "", "task %q: the credentials of ServiceAccount %q: %v", t.GetName(), sa, err)
	}
	builders := []credmatcher.Matcher{dockercreds.NewBuilder(), gitcreds.NewBuilder()}
	out := &taskCreds{}
	for _, s := range secrets {
		if err := b.checkGitSSHSecret(s); err != nil {
			return nil, load.Errorf("", "", "task %q, Secret %q: %v", t.GetName(), s.Name, err)
		}
		matched := false
		for _, m := range builders {
			for _, flag := range m.MatchingAnnotations(s) {
				matched = true
				out.args = append(out.args, strings.TrimPrefix(flag, "-"))
			}
		}
		if !matched {
			continue
		}
		name := podlayout.VolumeName("creds-"+podlayout.RunSuffix(t.GetName()+"/"+s.Name), b.uid)
		b.addVolume(corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: s.Name}}})
		out.mounts = append(out.mounts, corev1.VolumeMount{Name: name, MountPath: credmatcher.VolumeName(s.Name)})
	}
	if len(out.args) == 0 {
		return nil, nil
	}
	return out, nil
}

// credsDir is a step's own /tekton/creds, an emptyDir in memory as
// Tekton's (pkg/pod getCredsInitVolume): writable whatever the step's user,
// and fresh, so that a step running as another user than the one before
// can write its credentials.
func (b *builder) credsDir(t *planpb.Task, step int) corev1.VolumeMount {
	name := podlayout.VolumeName("creds-home-"+podlayout.RunSuffix(fmt.Sprintf("%s/%d", t.GetName(), step)), b.uid)
	b.addVolume(corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory}}})
	return corev1.VolumeMount{Name: name, MountPath: credsinit.Dir}
}

// featureFlags are the run's Tekton feature flags.
func (b *builder) featureFlags() *config.FeatureFlags {
	if b.c.Config != nil && b.c.Config.FeatureFlags != nil {
		return b.c.Config.FeatureFlags
	}
	ff, _ := config.NewFeatureFlagsFromMap(map[string]string{})
	return ff
}

// checkGitSSHSecret refuses, as Tekton's credsInit does under
// require-git-ssh-secret-known-hosts, an SSH Secret without known_hosts.
func (b *builder) checkGitSSHSecret(s *corev1.Secret) error {
	if s.Type != corev1.SecretTypeSSHAuth || !b.featureFlags().RequireGitSSHSecretKnownHosts {
		return nil
	}
	if _, ok := s.Data["known_hosts"]; !ok {
		return errors.New(`TaskRun validation failed. Git SSH Secret must have "known_hosts" included when feature flag "require-git-ssh-secret-known-hosts" is set to true`)
	}
	return nil
}

package cmd

import (
	"path/filepath"

	"github.com/ipex-flake/ipex-flake/release/promote"
	"slices"

	"github.com/ipex-flake/ipex-flake/pipelines/gpuclass"
	"github.com/ipex-flake/ipex-flake/pipelines/stage"
)

// expandGPUClasses replaces each job of a per-class stage (integration,
// performance) that runs on an Intel GPU runner with one job per registered
// GPU class, routed by the class's runner labels. Without a classes file
// (the default path absent) the matrix is unchanged.
func expandGPUClasses(m *Matrix, path string, optional bool) (*Matrix, error) {
	cfg, err := gpuclass.Load(path, optional)
	if err != nil || cfg == nil || len(cfg.Classes) == 0 {
		return m, err
	}
	out := &Matrix{Include: []MatrixEntry{}}
	for _, e := range m.Include {
		if !slices.Contains(gpuclass.Stages, e.Stage) || !slices.Contains(e.RunsOn, string(stage.IntelGPU)) {
			out.Include = append(out.Include, e)
			continue
		}
		arch := runnerArch[e.System]
		for _, cl := range cfg.Classes {
			job := e
			job.RunsOn = cl.RunsOn(arch)
			job.GPUClass = cl.Name
			out.Include = append(out.Include, job)
		}
	}
	return out, nil
}

// withGPUClasses gives the promoter the GPU classes of its repository
// (ci/gpu-classes.json, when present): the gates then require the classes
// it names, and the release notes carry the class × stage table.
func withGPUClasses(p *promote.Promoter) error {
	cfg, err := gpuclass.Load(filepath.Join(p.Repo.Dir, gpuclass.DefaultPath), true)
	if err != nil {
		return err
	}
	p.GPU = cfg
	return nil
}

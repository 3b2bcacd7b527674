package push

import "context"

// FakeUploader records uploads, for tests.
type FakeUploader struct {
	Uploaded [][]string
	Err      error
}

var _ Uploader = (*FakeUploader)(nil)

// Name implements Uploader.
func (f *FakeUploader) Name() string { return "fake" }

// Upload implements Uploader.
func (f *FakeUploader) Upload(_ context.Context, paths []string) error {
	f.Uploaded = append(f.Uploaded, append([]string(nil), paths...))
	return f.Err
}

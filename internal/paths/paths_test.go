package paths

import "testing"

func TestPaths(t *testing.T) {
	for _, tt := range []struct{ got, want string }{
		{Project(7), "/projects/7"},
		{Build(7, 12), "/projects/7/builds/12"},
		{Job(7, 12, 345), "/projects/7/builds/12/jobs/345"},
		{Webhook(7), "/webhooks/7"},
	} {
		if tt.got != tt.want {
			t.Errorf("got %s, want %s", tt.got, tt.want)
		}
	}
}

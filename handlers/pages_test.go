package handlers

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"html"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/PuerkitoBio/goquery"
	nethtml "golang.org/x/net/html"

	"kozmic/internal/fakegithub"
	"kozmic/runner"
	"kozmic/store"
	"kozmic/views"
)

// Hostile text, as a commit message, branch, hook, login or address may hold it.
const (
	xssScript = `<script>alert(1)</script>`
	xssImg    = `"><img src=x onerror=alert(1)>`
)

var (
	durationRE = regexp.MustCompile(`^\d+s$`)
	exactRE    = regexp.MustCompile(`^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} `)
)

// fetchPage GETs path as b, requires the status and an HTML answer, and parses it.
func fetchPage(t *testing.T, b *browser, path string, status int) (*goquery.Document, string) {
	t.Helper()
	res, body := b.do("GET", path, nil)
	if res.StatusCode != status {
		t.Fatalf("GET %s: status %d, want %d", path, res.StatusCode, status)
	}
	if ct := res.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("GET %s: Content-Type %q", path, ct)
	}
	return parse(t, body), body
}

// fetchPoll GETs path as htmx does when it polls, and requires the answer
// to be the one element with the given id, without the layout around it.
func fetchPoll(t *testing.T, b *browser, path, id string) *goquery.Document {
	t.Helper()
	b.header.Set("HX-Request", "true")
	res, body := b.do("GET", path, nil)
	b.header.Del("HX-Request")
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("poll of %s: status %d, Content-Type %q", path, res.StatusCode, res.Header.Get("Content-Type"))
	}
	if v := res.Header.Values("Vary"); !slices.Contains(v, "HX-Request") {
		t.Errorf("poll of %s: Vary %q lacks HX-Request, so a cache may answer a page with the part", path, v)
	}
	doc := parse(t, body)
	if top := doc.Find("body").Children(); top.Length() != 1 || attrOf(top, "id") != id {
		t.Errorf("poll of %s: %d elements, the first with id %q; want only #%s", path, top.Length(), attrOf(top.First(), "id"), id)
	}
	if lower := strings.ToLower(body); strings.Contains(lower, "<html") || strings.Contains(lower, "<!doctype") ||
		doc.Find("title, header, main, script").Length() != 0 {
		t.Errorf("poll of %s: the answer holds the layout:\n%s", path, body)
	}
	return doc
}

// checkWholePage checks that a page that polls for part of itself answers a
// request that is not a poll with the whole page.
func checkWholePage(t *testing.T, where string, doc *goquery.Document, body string) {
	t.Helper()
	if !strings.HasPrefix(strings.ToLower(body), "<!doctype html>") || doc.Find("title").Length() != 1 || doc.Find("header.top").Length() != 1 {
		t.Errorf("%s: not the whole page", where)
	}
}

// textOf is the selection's text with each run of white space made one space.
func textOf(s *goquery.Selection) string { return strings.Join(strings.Fields(s.Text()), " ") }

// attrOf is an attribute's value, or a marker when the element or attribute is absent.
func attrOf(s *goquery.Selection, name string) string {
	if v, ok := s.Attr(name); ok {
		return v
	}
	return "<no " + name + ">"
}

// checkStatus checks that s is one status badge: the word, and its class.
func checkStatus(t *testing.T, where string, s *goquery.Selection, word, class string) {
	t.Helper()
	if s.Length() != 1 || textOf(s) != word || !s.HasClass("status") || !s.HasClass(class) {
		t.Errorf("%s: status %d× %q class %q, want %q with %q", where, s.Length(), textOf(s), attrOf(s, "class"), word, class)
	}
}

// checkForm checks that s is one form posting to action with a submit button saying button.
func checkForm(t *testing.T, where string, s *goquery.Selection, action, button string) {
	t.Helper()
	if s.Length() != 1 {
		t.Errorf("%s: %d forms to %s, want 1", where, s.Length(), action)
		return
	}
	if m, a := attrOf(s, "method"), attrOf(s, "action"); m != "post" || a != action {
		t.Errorf("%s: form %s %s, want post %s", where, m, a, action)
	}
	if b := s.Find(`button[type="submit"]`); b.Length() != 1 || textOf(b) != button {
		t.Errorf("%s: submit button %q, want %q", where, textOf(b), button)
	}
}

// checkInert checks that nothing a user typed became markup: the only
// scripts are the layout's files, and there is no image or event handler.
func checkInert(t *testing.T, where string, doc *goquery.Document, body string) {
	t.Helper()
	doc.Find("script").Each(func(_ int, s *goquery.Selection) {
		if src := attrOf(s, "src"); !strings.HasPrefix(src, "/static/") || strings.TrimSpace(s.Text()) != "" {
			t.Errorf("%s: a script element that is not the layout's: src %q, %q", where, src, s.Text())
		}
	})
	// The one SVG a page may hold is the project page's chart (views.ChartID).
	// A job page's log may show a terminal's inline image, as a data: URL
	// (checkLogInert).
	logImage := func(_ int, s *goquery.Selection) bool {
		return s.Is("img") && strings.HasPrefix(attrOf(s, "src"), "data:image/") && s.Closest("#"+views.LogID).Length() > 0
	}
	if n := doc.Find("img, svg:not(#" + views.ChartID + "), [onerror], [onload]").NotSelection(doc.Find("img").FilterFunction(logImage)).Length(); n != 0 {
		t.Errorf("%s: %d injected elements", where, n)
	}
	for _, raw := range []string{xssScript, "<img src=x"} {
		if strings.Contains(body, raw) {
			t.Errorf("%s: the page holds %q unescaped", where, raw)
		}
	}
}

// checkLogInert checks a rendered log: no script or event handler, and
// images only as the data: URLs of a terminal's inline images.
func checkLogInert(t *testing.T, where string, doc *goquery.Document, body string) {
	t.Helper()
	doc.Find("img").Each(func(_ int, img *goquery.Selection) {
		if !strings.HasPrefix(attrOf(img, "src"), "data:image/") {
			t.Errorf("%s: image from %q", where, attrOf(img, "src"))
		}
	})
	if n := doc.Find("script, [onerror], [onload]").Length(); n != 0 || strings.Contains(body, xssScript) || strings.Contains(body, "javascript:") {
		t.Errorf("%s: %d injected elements", where, n)
	}
}

// panelTitled is the page's section.panel whose h2 says title.
func panelTitled(doc *goquery.Document, title string) *goquery.Selection {
	return doc.Find("section.panel").FilterFunction(func(_ int, s *goquery.Selection) bool { return textOf(s.Find("h2")) == title })
}

// peopleOf lists people rows (li) as "login role" lines.
func peopleOf(rows *goquery.Selection) []string {
	var out []string
	rows.Each(func(_ int, li *goquery.Selection) {
		own := li.Find("span").First().Contents().FilterFunction(func(_ int, n *goquery.Selection) bool { return goquery.NodeName(n) == "#text" })
		out = append(out, strings.TrimSpace(own.Text())+" "+textOf(li.Find("span.tag")))
	})
	return out
}

// checkSignedIn checks the top bar of a signed-in person's page.
func checkSignedIn(t *testing.T, where string, doc *goquery.Document, login string) {
	t.Helper()
	nav := doc.Find("header.top nav.session")
	if a := nav.Find(`a[href="/account"]`); a.Length() != 1 || a.Text() != login {
		t.Errorf("%s: account link %q, want %q", where, a.Text(), login)
	}
	checkForm(t, where+" sign out", nav.Find("form"), "/logout", "Sign out")
	if nav.Find(`a[href="/login"]`).Length() != 0 {
		t.Errorf("%s: a signed-in page offers to sign in", where)
	}
}

// signInTeam signs in hubot (a manager of p) and monalisa (a member), after
// ownedProject signed in octocat; it returns their browsers by login.
func signInTeam(t *testing.T, s *testServer, p store.Project) map[string]*browser {
	t.Helper()
	bs := map[string]*browser{"hubot": newBrowser(t, s), "monalisa": newBrowser(t, s), "eve": newBrowser(t, s)}
	signInAs(t, s, bs["hubot"], 2, "hubot")
	signInAs(t, s, bs["monalisa"], 3, "monalisa")
	signInAs(t, s, bs["eve"], 4, "eve")
	if _, err := s.db.SyncMemberships(context.Background(), p.ID, []store.GitHubAccess{{GitHubID: 2, Manage: true}, {GitHubID: 3}}); err != nil {
		t.Fatal(err)
	}
	return bs
}

// moveJob moves an enqueued job to st through running, with the cache result.
func moveJob(t *testing.T, s *testServer, id int64, st store.JobStatus, cache store.CacheResult) {
	t.Helper()
	ctx := context.Background()
	if _, err := s.db.UpdateJob(ctx, id, store.JobUpdate{Status: store.JobRunning, Cache: cache}); err != nil {
		t.Fatal(err)
	}
	if st != store.JobRunning {
		if _, err := s.db.UpdateJob(ctx, id, store.JobUpdate{Status: st}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestPageLogin(t *testing.T) {
	s := newTestServer(t)
	anon := newBrowser(t, s)
	for _, tt := range []struct {
		next  string
		local bool // kept, to come back to after signing in
	}{
		{"", true},
		{"/projects/1?branch=a%26b", true},
		{"/" + xssImg, true},
		{"https://evil.example/", false},
		{"//evil.example/", false},
	} {
		href := "/auth/github?next="
		if tt.local {
			href += url.QueryEscape(tt.next)
		}
		where := "login next=" + tt.next
		doc, body := fetchPage(t, anon, "/login?next="+url.QueryEscape(tt.next), 200)
		if got := doc.Find("title").Text(); got != "Sign in · Kozmic" {
			t.Errorf("%s: title %q", where, got)
		}
		if got := textOf(doc.Find("main h1")); got != "Sign in to Kozmic" {
			t.Errorf("%s: h1 %q", where, got)
		}
		if a := doc.Find("main a.button"); a.Length() != 1 || textOf(a) != "Sign in with GitHub" || attrOf(a, "href") != href {
			t.Errorf("%s: button %d× %q to %q, want %q", where, a.Length(), textOf(a), attrOf(a, "href"), href)
		}
		nav := doc.Find("header.top nav.session")
		if nav.Find(`a[href="/login"]`).Length() != 1 || nav.Find("form").Length() != 0 || nav.Find(`a[href="/account"]`).Length() != 0 {
			t.Errorf("%s: the top bar is not an anonymous one: %q", where, textOf(nav))
		}
		if doc.Find(".flash").Length() != 0 {
			t.Errorf("%s: an error shows before any attempt", where)
		}
		checkInert(t, where, doc, body)
	}

	// A callback that does not match the login started here.
	anon.do("GET", "/auth/github", nil)
	doc, _ := fetchPage(t, anon, "/auth/github/callback?code=c&state=forged", 400)
	if f := doc.Find("p.flash.flash-error"); f.Length() != 1 || attrOf(f, "role") != "alert" || !strings.Contains(textOf(f), "expired") {
		t.Errorf("forged state: flash %q role %q", textOf(f), attrOf(f, "role"))
	}
	if doc.Find("main a.button").Length() != 1 {
		t.Error("forged state: no way to try again")
	}
}

// Without GitHub, people sign in with a local account's name and password.
func TestPageLocalLogin(t *testing.T) {
	s := newLocalTestServer(t)
	localUser(t, s, "ann", "ann's password")
	b := newBrowser(t, s)
	check := func(where string, doc *goquery.Document, body, next, username string) {
		t.Helper()
		checkInert(t, where, doc, body)
		if got := textOf(doc.Find("main h1")); got != "Sign in to Kozmic" {
			t.Errorf("%s: h1 %q", where, got)
		}
		if doc.Find(`main a.button, a[href^="/auth/github"]`).Length() != 0 {
			t.Errorf("%s: offers GitHub, which is not set up", where)
		}
		form := doc.Find("main form")
		checkForm(t, where, form, "/login", "Sign in")
		if got := attrOf(form.Find(`input[type="hidden"][name="next"]`), "value"); got != next {
			t.Errorf("%s: next %q, want %q", where, got, next)
		}
		user, pw := form.Find(`input#username[name="username"][required]`), form.Find(`input#password[name="password"][type="password"][required]`)
		if user.Length() != 1 || pw.Length() != 1 || attrOf(user, "value") != username || attrOf(pw, "value") != "<no value>" {
			t.Errorf("%s: username %d× %q, password %d×", where, user.Length(), attrOf(user, "value"), pw.Length())
		}
		// The cursor starts where there is something to type.
		if _, onUser := user.Attr("autofocus"); onUser != (username == "") {
			t.Errorf("%s: autofocus on the username %v with %q typed", where, onUser, username)
		}
		if _, onPw := pw.Attr("autofocus"); onPw != (username != "") {
			t.Errorf("%s: autofocus on the password %v with %q typed", where, onPw, username)
		}
		for _, id := range []string{"username", "password"} {
			if form.Find(`label[for="`+id+`"]`).Length() != 1 {
				t.Errorf("%s: no label for %s", where, id)
			}
		}
		var codes []string
		doc.Find("main p.muted code").Each(func(_ int, c *goquery.Selection) { codes = append(codes, c.Text()) })
		if strings.Join(codes, ",") != "admin,KOZMIC_ADMIN_PASSWORD,kozmic user add NAME" {
			t.Errorf("%s: the help names %q", where, codes)
		}
	}

	doc, body := fetchPage(t, b, "/login?next="+url.QueryEscape("/"+xssImg), 200)
	check("local login", doc, body, "/"+xssImg, "")
	if doc.Find(".flash").Length() != 0 {
		t.Error("local login: an error before any attempt")
	}

	// Refused: why, with the name kept as typed.
	res, body := b.do("POST", "/login", url.Values{"username": {xssScript}, "password": {"guess"}, "next": {"/account"}})
	if res.StatusCode != 401 {
		t.Fatalf("wrong password: %d", res.StatusCode)
	}
	doc = parse(t, body)
	check("wrong password", doc, body, "/account", xssScript)
	if f := doc.Find("p.flash.flash-error"); textOf(f) != "Wrong username or password." || attrOf(f, "role") != "alert" {
		t.Errorf("wrong password: flash %q", textOf(f))
	}
	if strings.Contains(body, "guess") {
		t.Error("wrong password: the password is echoed")
	}
}

func TestPageDashboard(t *testing.T) {
	s := newTestServer(t)
	b := newBrowser(t, s)
	ctx := context.Background()
	b.signIn("/")

	// Nothing yet: the empty state says where to start.
	doc, _ := fetchPage(t, b, "/", 200)
	checkSignedIn(t, "empty dashboard", doc, "octocat")
	if got := doc.Find("title").Text(); got != "Dashboard · Kozmic" {
		t.Errorf("title %q", got)
	}
	if got := textOf(doc.Find("main h1")); got != "Projects" {
		t.Errorf("h1 %q", got)
	}
	if doc.Find(`main .head a[href="/repositories"]`).Length() != 1 {
		t.Error("no link to the repositories in the head")
	}
	if a := doc.Find(`main .head a.button[href="/projects/new"]`); textOf(a) != "New project" {
		t.Errorf("new project button %q", textOf(a))
	}
	dash := doc.Find("#" + views.DashboardID)
	empty := dash.Find("p.muted")
	if dash.Find("li").Length() != 0 || !strings.HasPrefix(textOf(empty), "No projects yet.") ||
		empty.Find(`a[href="/repositories"]`).Length() != 1 || empty.Find(`a[href="/projects/new"]`).Length() != 1 {
		t.Errorf("empty state %q", textOf(empty))
	}

	// Without GitHub there are no repositories to lead to.
	_, lb := signInLocal(t, newLocalTestServer(t), "ann")
	doc, _ = fetchPage(t, lb, "/", 200)
	checkSignedIn(t, "local dashboard", doc, "ann")
	empty = doc.Find("#" + views.DashboardID + " p.muted")
	if doc.Find(`a[href="/repositories"]`).Length() != 0 || !strings.HasPrefix(textOf(empty), "No projects yet. Create one") ||
		empty.Find(`a[href="/projects/new"]`).Length() != 1 || doc.Find(`main .head a.button[href="/projects/new"]`).Length() != 1 {
		t.Errorf("local empty state %q", textOf(empty))
	}

	// One project per build status, and one without builds.
	statuses := []struct {
		job         store.JobStatus
		word, class string
	}{
		{store.JobEnqueued, "enqueued", "status-enqueued"},
		{store.JobRunning, "running", "status-running"},
		{store.JobSuccess, "passed", "status-success"},
		{store.JobFailure, "failed", "status-failure"},
		{store.JobError, "error", "status-error"},
	}
	for i, st := range statuses {
		p, err := s.db.CreateProject(ctx, store.NewProject{OwnerID: 1, Source: store.SourceGitHub, GitHubID: int64(100 + i),
			FullName: "octocat/" + string(st.job), WebhookSecret: "s"})
		if err != nil {
			t.Fatal(err)
		}
		buildWithLog(t, s, p, "refs/heads/feature/"+string(st.job), fmt.Sprintf("%02d13728f27ae82c7b1a177c8d03f9e96e0adf2", i), "m", "", st.job)
	}
	idle, err := s.db.CreateProject(ctx, store.NewProject{OwnerID: 1, Source: store.SourceGitHub, GitHubID: 99, FullName: "octocat/idle", WebhookSecret: "s"})
	if err != nil {
		t.Fatal(err)
	}

	check := func(where string, doc *goquery.Document) {
		dash := doc.Find("#" + views.DashboardID)
		if dash.Length() != 1 {
			t.Fatalf("%s: %d dashboards", where, dash.Length())
		}
		for k, v := range map[string]string{"hx-get": "/", "hx-trigger": "every 5s", "hx-swap": "outerHTML"} {
			if got := attrOf(dash, k); got != v {
				t.Errorf("%s: %s=%q, want %q", where, k, got, v)
			}
		}
		if n := dash.Find("ul.rows > li").Length(); n != len(statuses)+1 {
			t.Errorf("%s: %d rows, want %d", where, n, len(statuses)+1)
		}
		if dash.Find("p.muted").Length() != 0 {
			t.Errorf("%s: the empty state shows beside projects", where)
		}
		for i, st := range statuses {
			name := "octocat/" + string(st.job)
			link := dash.Find("li a").FilterFunction(func(_ int, a *goquery.Selection) bool { return a.Text() == name })
			row := link.Closest("li")
			if link.Length() != 1 {
				t.Errorf("%s: %d rows for %s", where, link.Length(), name)
				continue
			}
			pid := strings.TrimPrefix(attrOf(link, "href"), "/projects/")
			checkStatus(t, where+" "+name, row.Find("span.build > .status"), st.word, st.class)
			if a := row.Find(`a[href="/projects/` + pid + `/builds/1"]`); textOf(a) != "#1" {
				t.Errorf("%s %s: build link %q", where, name, textOf(a))
			}
			if got := textOf(row.Find("span.branch")); got != "feature/"+string(st.job) {
				t.Errorf("%s %s: branch %q", where, name, got)
			}
			if got := textOf(row.Find("code")); got != fmt.Sprintf("%02d13728f", i)[:8] {
				t.Errorf("%s %s: commit %q", where, name, got)
			}
			if tm := row.Find("span.meta time"); textOf(tm) != "just now" || !exactRE.MatchString(attrOf(tm, "title")) {
				t.Errorf("%s %s: time %q title %q", where, name, textOf(tm), attrOf(tm, "title"))
			}
		}
		row := dash.Find(fmt.Sprintf(`a[href="/projects/%d"]`, idle.ID)).Closest("li")
		checkStatus(t, where+" idle", row.Find(".status"), "no builds", "status-enqueued")
		if row.Find("a").Length() != 1 || row.Find("span.branch, code, time").Length() != 0 {
			t.Errorf("%s: the project without builds shows a build: %q", where, textOf(row))
		}
	}
	doc, body := fetchPage(t, b, "/", 200)
	check("dashboard", doc)
	checkWholePage(t, "dashboard", doc, body)
	checkInert(t, "dashboard", doc, body)
	// What the poll gets: the list it selects, polling on.
	check("dashboard poll", fetchPoll(t, b, "/", views.DashboardID))

	// A stranger sees none of it.
	stranger := newBrowser(t, s)
	signInAs(t, s, stranger, 9, "stranger")
	doc, _ = fetchPage(t, stranger, "/", 200)
	if n := doc.Find("#" + views.DashboardID + " li").Length(); n != 0 || !strings.HasPrefix(textOf(doc.Find("#"+views.DashboardID+" p.muted")), "No projects yet.") {
		t.Errorf("stranger: %d rows, empty state %q", n, textOf(doc.Find("#"+views.DashboardID+" p.muted")))
	}
}

func TestPageRepositories(t *testing.T) {
	s := newTestServer(t)
	routeRepoAPI(s.github)
	b := newBrowser(t, s)
	b.signIn("/")

	// GitHub fails on the first visit: the page says so and lists nothing.
	s.github.Script("GET /api/v3/user/repos", fakegithub.Reply{Status: 502, Body: `{"message":"Server Error"}`})
	doc, _ := fetchPage(t, b, "/repositories", 200)
	if f := doc.Find("p.flash.flash-error"); f.Length() != 1 || attrOf(f, "role") != "alert" || textOf(f) != "GitHub answered: Server Error" {
		t.Errorf("GitHub down: flash %q", textOf(f))
	}
	if n := doc.Find("section.panel").Length(); n != 0 {
		t.Errorf("GitHub down: %d groups listed", n)
	}
	if got := textOf(doc.Find("main > p.muted")); got != "Repositories you administer, as GitHub listed them never." {
		t.Errorf("GitHub down: %q", got)
	}

	// A repository with a hostile name (GitHub's word is not trusted either), one a project already.
	hostile := "octocat/" + xssImg
	js, _ := json.Marshal(hostile)
	s.github.Script("GET /api/v3/user/repos", fakegithub.Reply{Status: 200,
		Body: strings.Replace(s.github.Fixture("user_repos.json"), `"octocat/Spoon-Knife"`, string(js), 1)})
	p, err := s.db.CreateProject(context.Background(), store.NewProject{OwnerID: 1, Source: store.SourceGitHub, GitHubID: 1296269,
		FullName: "octocat/Hello-World", WebhookSecret: "s"})
	if err != nil {
		t.Fatal(err)
	}
	doc, body := fetchPage(t, b, "/repositories", 200)
	checkSignedIn(t, "repositories", doc, "octocat")
	checkInert(t, "repositories", doc, body)
	if got := textOf(doc.Find("main h1")); got != "Repositories" {
		t.Errorf("h1 %q", got)
	}
	checkForm(t, "sync", doc.Find("main .head form"), "/repositories/sync", "Sync with GitHub")
	if doc.Find(".flash").Length() != 0 {
		t.Error("a flash shows after a good sync")
	}
	if got := textOf(doc.Find("main > p.muted")); !regexp.MustCompile(`^Repositories you administer, as GitHub listed them at \d{1,2} [A-Z][a-z]{2} \d\d:\d\d\.$`).MatchString(got) {
		t.Errorf("synced at: %q", got)
	}
	var groups []string
	doc.Find("section.panel h2").Each(func(_ int, h *goquery.Selection) { groups = append(groups, h.Text()) })
	if strings.Join(groups, ",") != "Your repositories,github" {
		t.Errorf("groups %q", groups)
	}
	row := func(name string) *goquery.Selection {
		return doc.Find("section.panel li").FilterFunction(func(_ int, li *goquery.Selection) bool {
			return strings.TrimSpace(li.Find("span").First().Contents().First().Text()) == name
		})
	}
	for _, tt := range []struct {
		name    string
		private bool
		project int64
	}{
		{"octocat/Hello-World", true, p.ID},
		{hostile, false, 0},
		{"github/kozmic-ci", true, 0},
	} {
		li := row(tt.name)
		if li.Length() != 1 {
			t.Errorf("%d rows for %q", li.Length(), tt.name)
			continue
		}
		if got := li.Find("span.tag").Length() == 1 && textOf(li.Find("span.tag")) == "private"; got != tt.private {
			t.Errorf("%s: private tag %v, want %v", tt.name, got, tt.private)
		}
		if tt.project != 0 {
			if a := li.Find("a"); textOf(a) != "Open project" || attrOf(a, "href") != fmt.Sprintf("/projects/%d", tt.project) || li.Find("form").Length() != 0 {
				t.Errorf("%s: link %q to %q, %d forms", tt.name, textOf(a), attrOf(a, "href"), li.Find("form").Length())
			}
			continue
		}
		form := li.Find("form")
		checkForm(t, tt.name, form, "/projects", "Create project")
		if in := form.Find(`input[type="hidden"][name="repo"]`); attrOf(in, "value") != tt.name {
			t.Errorf("%s: the form creates %q", tt.name, attrOf(in, "value"))
		}
	}
}

func TestPageProject(t *testing.T) {
	s := newTestServer(t)
	owner := newBrowser(t, s)
	ctx := context.Background()
	p := ownedProject(t, s, owner, "octocat/Hello-World", 1296269)
	bs := signInTeam(t, s, p)
	bs["octocat"] = owner
	projectURL := fmt.Sprintf("/projects/%d", p.ID)
	if err := s.db.SetDeployKey(ctx, store.DeployKey{ProjectID: p.ID, PublicKey: "ssh-ed25519 AAAAC3Nza kozmic", PrivateKey: "private"}); err != nil {
		t.Fatal(err)
	}

	// No builds yet.
	doc, _ := fetchPage(t, owner, projectURL, 200)
	if got := textOf(doc.Find("section.panel.wide").First().Find("p.muted").First()); !strings.HasPrefix(got, "No builds yet. Push a commit") {
		t.Errorf("empty state %q", got)
	}
	if n := doc.Find("ul.builds > li").Length(); n != 0 {
		t.Errorf("%d rows without builds", n)
	}

	for i := 1; i <= 30; i++ {
		ref := "refs/heads/main"
		if i%10 == 0 {
			ref = "refs/heads/feature"
		}
		buildWithLog(t, s, p, ref, fmt.Sprintf("%040d", i), fmt.Sprintf("change %d <b>bold</b>\n\nsecond-paragraph-text", i), "", store.JobSuccess)
	}
	doc, body := fetchPage(t, owner, projectURL, 200)
	checkSignedIn(t, "project", doc, "octocat")
	checkInert(t, "project", doc, body)
	if got := doc.Find("head title").Text(); got != "octocat/Hello-World · Kozmic" {
		t.Errorf("title %q", got)
	}
	if got := textOf(doc.Find("main > .head h1")); got != "octocat/Hello-World" {
		t.Errorf("h1 %q", got)
	}
	if got := textOf(doc.Find("main > .head span.tag")); got != "private" {
		t.Errorf("visibility tag %q", got)
	}
	rows := doc.Find("ul.builds > li")
	if rows.Length() != 25 {
		t.Fatalf("%d rows on the first page, want 25", rows.Length())
	}
	first := rows.First()
	checkStatus(t, "first row", first.Find("span.build > .status"), "passed", "status-success")
	if a := first.Find("span.build > a"); textOf(a) != "#30" || attrOf(a, "href") != projectURL+"/builds/30" {
		t.Errorf("first row links %q to %q", textOf(a), attrOf(a, "href"))
	}
	if got := textOf(first.Find("span.branch")); got != "feature" {
		t.Errorf("first row branch %q", got)
	}
	if got := textOf(first.Find("code")); got != "00000000" {
		t.Errorf("first row commit %q", got)
	}
	if msg := first.Find("span.message"); msg.Text() != "change 30 <b>bold</b>" || msg.Find("b").Length() != 0 {
		t.Errorf("first row message %q (markup %d)", msg.Text(), msg.Find("b").Length())
	}
	if meta := textOf(first.Find("span.meta")); !regexp.MustCompile(`^Ann · push · \d+s · just now$`).MatchString(meta) {
		t.Errorf("first row meta %q", meta)
	}
	if got := textOf(rows.Last().Find("span.build > a")); got != "#6" {
		t.Errorf("last row %q, want #6", got)
	}
	if doc.Find("ul.builds time[title]").Length() != 25 {
		t.Errorf("%d times of day, want one a row", doc.Find("ul.builds time[title]").Length())
	}
	older := doc.Find("a").FilterFunction(func(_ int, a *goquery.Selection) bool { return a.Text() == "Older builds" })
	if attrOf(older, "href") != projectURL+"?before=6" {
		t.Errorf("older builds link %q", attrOf(older, "href"))
	}
	filter := doc.Find(`form[method="get"]`)
	if attrOf(filter, "action") != projectURL || attrOf(filter.Find(`input[name="branch"]`), "value") != "" || textOf(filter.Find(`button[type="submit"]`)) != "Filter" {
		t.Errorf("branch filter: action %q", attrOf(filter, "action"))
	}
	badge := fmt.Sprintf("[![build](http://kozmic.test/badges/octocat/Hello-World.svg)](http://kozmic.test/projects/%d)", p.ID)
	if got := doc.Find("code.wrap").FilterFunction(func(_ int, c *goquery.Selection) bool { return strings.HasPrefix(c.Text(), "[![") }); got.Text() != badge {
		t.Errorf("badge Markdown %q, want %q", got.Text(), badge)
	}

	// The next page, a branch, a branch with no builds.
	for _, tt := range []struct {
		query, branch string
		rows          int
		first, older  string
		empty         string
	}{
		{"?before=6", "", 5, "#5", "", ""},
		{"?branch=feature", "feature", 3, "#30", "", ""},
		{"?branch=refs/heads/feature", "refs/heads/feature", 3, "#30", "", ""},
		{"?branch=main", "main", 25, "#29", projectURL + "?before=3&branch=main", ""},
		{"?branch=main&before=11", "main", 9, "#9", "", ""},
		{"?branch=nothing", "nothing", 0, "", "", "No builds of nothing."},
	} {
		doc, _ := fetchPage(t, owner, projectURL+tt.query, 200)
		rows := doc.Find("ul.builds > li")
		if rows.Length() != tt.rows || textOf(rows.First().Find("span.build > a")) != tt.first {
			t.Errorf("%s: %d rows from %q", tt.query, rows.Length(), textOf(rows.First().Find("span.build > a")))
		}
		if got := attrOf(doc.Find(`form[method="get"] input[name="branch"]`), "value"); got != tt.branch {
			t.Errorf("%s: filter shows %q", tt.query, got)
		}
		older := doc.Find("a").FilterFunction(func(_ int, a *goquery.Selection) bool { return a.Text() == "Older builds" })
		if tt.older == "" && older.Length() != 0 || tt.older != "" && attrOf(older, "href") != tt.older {
			t.Errorf("%s: %d links to older builds, to %q; want %q", tt.query, older.Length(), attrOf(older, "href"), tt.older)
		}
		empty := doc.Find("ul.builds").PrevAllFiltered("p.muted")
		if textOf(empty) != tt.empty {
			t.Errorf("%s: empty state %q, want %q", tt.query, textOf(empty), tt.empty)
		}
	}

	// What each role is offered.
	webhook := fmt.Sprintf("http://kozmic.test/webhooks/%d", p.ID)
	for _, tt := range []struct {
		login, role          string
		configure, canDelete bool
	}{
		{"octocat", "owner", true, true},
		{"hubot", "manager", true, false},
		{"monalisa", "member", false, false},
	} {
		doc, body := fetchPage(t, bs[tt.login], projectURL, 200)
		where := "project as " + tt.login
		if got := textOf(doc.Find("main > p.muted").First()); got != "Your role: "+tt.role+"." {
			t.Errorf("%s: %q", where, got)
		}
		if n := doc.Find(".flash").Length(); n != 0 {
			t.Errorf("%s: %d flashes unasked", where, n)
		}
		if run := doc.Find("form#" + views.RunBuildID); tt.configure {
			checkForm(t, where+" run build", run, projectURL+"/builds", "Run build")
			if in := run.Find(`input#ref[name="ref"]`); attrOf(in, "value") != "" || run.Find(`label[for="ref"]`).Length() != 1 {
				t.Errorf("%s: run build ref %q", where, attrOf(in, "value"))
			}
		} else if run.Length() != 0 {
			t.Errorf("%s: offers to run a build", where)
		}
		conn := panelTitled(doc, "Connection")
		if got := conn.Length() == 1; got != tt.configure {
			t.Errorf("%s: connection shown %v", where, got)
		}
		if tt.configure {
			hook := conn.Find("p").FilterFunction(func(_ int, p *goquery.Selection) bool { return strings.HasPrefix(p.Text(), "Webhook:") })
			if hook.Find("code").Text() != webhook || conn.Find("pre.copy").Text() != "ssh-ed25519 AAAAC3Nza kozmic" {
				t.Errorf("%s: connection %q", where, textOf(conn))
			}
			// A GitHub project's webhook secret went to GitHub; the page keeps it.
			if n := conn.Find("details").Length(); n != 0 || strings.Contains(textOf(conn), "Clones") {
				t.Errorf("%s: a GitHub project shows what git URL projects need: %q", where, textOf(conn))
			}
		}
		if !tt.configure && (strings.Contains(body, webhook) || strings.Contains(body, "ssh-ed25519")) {
			t.Errorf("%s: the webhook or deploy key is shown", where)
		}
		people := doc.Find("#" + views.PeopleID)
		if got := strings.Join(peopleOf(people.Find("li")), ","); got != "octocat owner,hubot manager,monalisa member" {
			t.Errorf("%s: people %q", where, got)
		}
		if sync := people.Find(`form[action$="/sync"]`); tt.configure {
			checkForm(t, where, sync, projectURL+"/members/sync", "Sync with GitHub")
		} else if sync.Length() != 0 {
			t.Errorf("%s: offers to sync members", where)
		}
		// GitHub says who is on the project: nobody is added or removed here.
		if n := people.Find(`form[action$="/delete"], form[action$="/members"], select`).Length(); n != 0 {
			t.Errorf("%s: %d controls to add or remove people", where, n)
		}
		if n := doc.Find(`a[href="` + projectURL + `/settings"]`).Length(); (n == 1) != tt.configure || n > 1 {
			t.Errorf("%s: %d settings links", where, n)
		}
		del := doc.Find(`a[href="` + projectURL + `/delete"]`)
		if (del.Length() == 1) != tt.canDelete || del.Length() > 1 {
			t.Errorf("%s: %d delete links", where, del.Length())
		}
		if tt.canDelete && (!del.HasClass("danger") || textOf(del) != "Delete this project…") {
			t.Errorf("%s: delete link %q", where, textOf(del))
		}
	}

	// What the page says after an action sent people back to it.
	for query, flash := range map[string]string{
		"?synced":  "Members synced with GitHub.",
		"?people":  "People saved.",
		"?created": "Project created. Add a hook in its settings, then run a build.",
		"?other":   "",
	} {
		doc, _ := fetchPage(t, owner, projectURL+query, 200)
		f := doc.Find(".flash")
		if flash == "" && f.Length() != 0 || flash != "" && (textOf(f) != flash || !f.HasClass("flash-ok") || attrOf(f, "role") != "status") {
			t.Errorf("%s: flash %q, want %q", query, textOf(f), flash)
		}
	}
}

// signInLocal makes a local account and signs a browser in with it.
func signInLocal(t *testing.T, s *testServer, name string) (store.User, *browser) {
	t.Helper()
	u := localUser(t, s, name, name+"'s password")
	b := newBrowser(t, s)
	if res, _ := b.do("POST", "/login", url.Values{"username": {name}, "password": {name + "'s password"}}); res.StatusCode != 303 {
		t.Fatalf("sign in as %s: %d", name, res.StatusCode)
	}
	return u, b
}

// A project of a git URL: its managers see how to connect the git server,
// and its owner manages its people.
func TestPageGitProject(t *testing.T) {
	s := newLocalTestServer(t)
	ctx := context.Background()
	ann, annB := signInLocal(t, s, "ann")
	bob, bobB := signInLocal(t, s, "bob")
	carol, carolB := signInLocal(t, s, "carol")
	dave := localUser(t, s, "dave", "dave's password")
	const (
		gitURL  = "git@git.example.com:team/app.git"
		private = "pk-a87ff679a2f3e71d9181a67b7542122c"
		secret  = "wh-e4da3b7fbbce2345d7772b0674a318d5"
		public  = "ssh-ed25519 AAAAgit kozmic team/app"
	)
	p, err := s.db.CreateProject(ctx, store.NewProject{OwnerID: ann.ID, Source: store.SourceGit, FullName: "team/app", GitURL: gitURL,
		WebhookSecret: secret, DeployKey: &store.DeployKey{PrivateKey: "-----BEGIN OPENSSH PRIVATE KEY-----\n" + private + "\n", PublicKey: public}})
	if err != nil {
		t.Fatal(err)
	}
	s.db.SetMembership(ctx, store.Membership{ProjectID: p.ID, UserID: bob.ID})
	s.db.SetMembership(ctx, store.Membership{ProjectID: p.ID, UserID: carol.ID, AllowsManagement: true})
	projectURL := fmt.Sprintf("/projects/%d", p.ID)
	webhook := fmt.Sprintf("http://kozmic.test/webhooks/%d", p.ID)

	for _, tt := range []struct {
		login, role      string
		b                *browser
		configure, owner bool
	}{
		{"ann", "owner", annB, true, true},
		{"carol", "manager", carolB, true, false},
		{"bob", "member", bobB, false, false},
	} {
		where := "git project as " + tt.login
		doc, body := fetchPage(t, tt.b, projectURL, 200)
		checkSignedIn(t, where, doc, tt.login)
		checkInert(t, where, doc, body)
		if got := textOf(doc.Find("main > p.muted").First()); got != "Your role: "+tt.role+"." {
			t.Errorf("%s: %q", where, got)
		}
		if strings.Contains(body, private) || strings.Contains(body, "PRIVATE KEY") {
			t.Errorf("%s: the private deploy key shows", where)
		}
		if got := doc.Find("form#"+views.RunBuildID).Length() == 1; got != tt.configure {
			t.Errorf("%s: run build form %v", where, got)
		}
		conn := panelTitled(doc, "Connection")
		if !tt.configure {
			if conn.Length() != 0 || strings.Contains(body, secret) || strings.Contains(body, gitURL) || strings.Contains(body, public) {
				t.Errorf("%s: a member sees the connection, its secret or its key", where)
			}
		} else {
			clones := conn.Find("p").FilterFunction(func(_ int, p *goquery.Selection) bool { return strings.HasPrefix(p.Text(), "Clones") })
			hook := conn.Find("p").FilterFunction(func(_ int, p *goquery.Selection) bool { return strings.HasPrefix(p.Text(), "Webhook:") })
			if clones.Find("code").Text() != gitURL || conn.Find("pre.copy").First().Text() != public || hook.Find("code").Text() != webhook {
				t.Errorf("%s: connection %q", where, textOf(conn))
			}
			if help := conn.Find("p.muted").First(); !strings.Contains(textOf(help), "Give this key read access") || help.Find("code").Text() != "~/.ssh/authorized_keys" {
				t.Errorf("%s: deploy key help %q", where, textOf(help))
			}
			details := conn.Find("details")
			if got := textOf(details.Find("summary")); got != "Webhook secret and a post-receive hook" {
				t.Errorf("%s: summary %q", where, got)
			}
			if got := details.Find("p").First().Find("code").Text(); got != secret {
				t.Errorf("%s: secret %q", where, got)
			}
			script := details.Find("pre.copy").Text()
			if !strings.HasPrefix(script, "#!/bin/sh\n") || !strings.Contains(script, "\nurl='"+webhook+"'\n") || !strings.Contains(script, "\nsecret='"+secret+"'\n") {
				t.Errorf("%s: post-receive hook\n%s", where, script)
			}
		}
		people := doc.Find("#" + views.PeopleID)
		if got := strings.Join(peopleOf(people.Find("li")), ","); got != "ann owner,carol manager,bob member" {
			t.Errorf("%s: people %q", where, got)
		}
		if n := people.Find(`form[action$="/members/sync"]`).Length(); n != 0 {
			t.Errorf("%s: offers to sync people with GitHub", where)
		}
		removes := people.Find(`li form`)
		add := people.Find(`form[action="` + projectURL + `/members"]`)
		if !tt.owner {
			if removes.Length() != 0 || add.Length() != 0 || people.Find("select").Length() != 0 {
				t.Errorf("%s: %d remove and %d add forms", where, removes.Length(), add.Length())
			}
			continue
		}
		for _, m := range []store.User{carol, bob} {
			li := people.Find("li").FilterFunction(func(_ int, li *goquery.Selection) bool {
				return strings.HasPrefix(peopleOf(li)[0], m.Username+" ")
			})
			form := li.Find("form")
			checkForm(t, where+" remove "+m.Username, form, fmt.Sprintf("%s/members/%d/delete", projectURL, m.ID), "Remove")
			if !form.HasClass("confirm") || attrOf(form, "data-confirm") != "Remove "+m.Username+" from team/app?" {
				t.Errorf("%s: removing %s asks %q", where, m.Username, attrOf(form, "data-confirm"))
			}
		}
		checkForm(t, where+" add", add, projectURL+"/members", "Add")
		var users, roles []string
		add.Find(`select[name="username"] option`).Each(func(_ int, o *goquery.Selection) { users = append(users, attrOf(o, "value")+"="+o.Text()) })
		add.Find(`select[name="role"] option`).Each(func(_ int, o *goquery.Selection) { roles = append(roles, attrOf(o, "value")) })
		if strings.Join(users, ",") != "dave=dave" || strings.Join(roles, ",") != "member,manager" {
			t.Errorf("%s: may add %q as %q", where, users, roles)
		}
	}

	// Once everyone is on the project, the owner is told how to make more accounts.
	s.db.SetMembership(ctx, store.Membership{ProjectID: p.ID, UserID: dave.ID})
	doc, _ := fetchPage(t, annB, projectURL+"?created", 200)
	people := doc.Find("#" + views.PeopleID)
	if note := people.Find("p.muted"); people.Find("select").Length() != 0 || !strings.HasPrefix(textOf(note), "Everyone with an account here is on the project.") ||
		note.Find("code").Text() != "kozmic user add NAME" {
		t.Errorf("nobody left to add: %q", textOf(note))
	}
	if f := doc.Find(".flash"); textOf(f) != "Project created. Give its deploy key (below) read access on the git server, add a hook in its settings, then run a build. "+
		"Kozmic could not check the URL yet, as the git server does not know the key: the first build does." {
		t.Errorf("created: flash %q", textOf(f))
	}
	doc, _ = fetchPage(t, annB, projectURL+"/delete", 200)
	if got := textOf(doc.Find("main section p")); !strings.Contains(got, "The repository itself is not touched.") || strings.Contains(got, "GitHub") {
		t.Errorf("delete page of a git project: %q", got)
	}
	if strings.Contains(doc.Text(), secret) {
		t.Error("the delete page shows the webhook secret")
	}

	// Running a build by hand: a ref that is not there is refused, as typed.
	repo, _ := gitRepo(t, t.TempDir(), true)
	local, err := s.db.CreateProject(ctx, store.NewProject{OwnerID: ann.ID, Source: store.SourceGit, FullName: "team/local", GitURL: repo, WebhookSecret: secret})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.CreateHook(ctx, store.Hook{ProjectID: local.ID, Title: "test", DockerImage: "busybox", BuildScript: "#!/bin/sh"}); err != nil {
		t.Fatal(err)
	}
	runURL := fmt.Sprintf("/projects/%d/builds", local.ID)
	res, body := annB.do("POST", runURL, url.Values{"ref": {xssImg}})
	if res.StatusCode != 422 {
		t.Fatalf("unknown ref: %d", res.StatusCode)
	}
	doc = parse(t, body)
	checkInert(t, "unknown ref", doc, body)
	if f := doc.Find("p.flash.flash-error"); f.Length() != 1 || attrOf(f, "role") != "alert" || textOf(f) == "" {
		t.Errorf("unknown ref: flash %q", textOf(f))
	}
	if got := attrOf(doc.Find("form#"+views.RunBuildID+" input#ref"), "value"); got != xssImg {
		t.Errorf("unknown ref: the form holds %q", got)
	}
	if n := doc.Find("ul.builds > li").Length(); n != 0 {
		t.Errorf("unknown ref: %d builds", n)
	}
	// The same commit twice: the second time, the first build and why.
	for i, want := range []string{runURL + "/1", runURL + "/1?existing"} {
		res, _ := annB.do("POST", runURL, url.Values{"ref": {"main"}})
		if loc := res.Header.Get("Location"); res.StatusCode != 303 || loc != want {
			t.Fatalf("run %d: %d to %q, want %q", i+1, res.StatusCode, loc, want)
		}
	}
	doc, _ = fetchPage(t, annB, runURL+"/1?existing", 200)
	if f := doc.Find("main > p.flash.flash-ok"); !strings.HasPrefix(textOf(f), "This commit was built before") {
		t.Errorf("existing: flash %q", textOf(f))
	}
	if got := textOf(doc.Find("section.panel p.muted").First()); !strings.HasPrefix(got, `Ann "Quote" Lee · manual by ann · refs/heads/main · `) {
		t.Errorf("a build run by hand: %q", got)
	}
}

func TestPageNewProject(t *testing.T) {
	s := newLocalTestServer(t)
	localAdmin(t, s, "ann", "ann's password")
	b := newBrowser(t, s)
	login(b, "ann", "ann's password", "")
	check := func(where string, doc *goquery.Document, body, name, gitURL string, public bool) {
		t.Helper()
		checkSignedIn(t, where, doc, "ann")
		checkInert(t, where, doc, body)
		if got := doc.Find("title").Text(); got != "New project · Kozmic" {
			t.Errorf("%s: title %q", where, got)
		}
		if got := textOf(doc.Find("main h1")); got != "New project" {
			t.Errorf("%s: h1 %q", where, got)
		}
		form := doc.Find("main form")
		checkForm(t, where, form, "/projects/new", "Create project")
		n, u := form.Find(`input#name[name="name"][required]`), form.Find(`input#git_url[name="git_url"][required]`)
		if attrOf(n, "value") != name || attrOf(u, "value") != gitURL || attrOf(n, "placeholder") != "team/app" {
			t.Errorf("%s: name %q, URL %q; want %q, %q", where, attrOf(n, "value"), attrOf(u, "value"), name, gitURL)
		}
		for _, id := range []string{"name", "git_url"} {
			if form.Find(`label[for="`+id+`"]`).Length() != 1 {
				t.Errorf("%s: no label for %s", where, id)
			}
		}
		box := form.Find(`label > input[type="checkbox"][name="public"]`)
		if _, checked := box.Attr("checked"); box.Length() != 1 || attrOf(box, "value") != "1" || checked != public {
			t.Errorf("%s: public box %d×, checked %v, want %v", where, box.Length(), checked, public)
		}
	}
	doc, body := fetchPage(t, b, "/projects/new", 200)
	check("new project", doc, body, "", "", false)
	if doc.Find(".flash").Length() != 0 {
		t.Error("new project: an error before any attempt")
	}
	// Refused: why, with what was typed kept, as text.
	dir := "/no/such/" + xssImg
	res, body := b.do("POST", "/projects/new", url.Values{"name": {xssScript}, "git_url": {dir}, "public": {"1"}})
	if res.StatusCode != 422 {
		t.Fatalf("no such directory: %d", res.StatusCode)
	}
	doc = parse(t, body)
	check("no such directory", doc, body, xssScript, dir, true)
	if f := doc.Find("p.flash.flash-error"); textOf(f) != strings.Join(strings.Fields("There is no directory "+dir+" on this server."), " ") || attrOf(f, "role") != "alert" {
		t.Errorf("no such directory: flash %q", textOf(f))
	}
	if u := doc.Find(`input#git_url`); !strings.Contains(attrOf(u, "placeholder"), "/srv/git/app.git") || textOf(doc.Find(`label[for="git_url"]`)) != "Git URL or path on this server" {
		t.Errorf("an admin's form does not offer server paths: %q", attrOf(u, "placeholder"))
	}

	// Someone who is not an admin is offered names under their own and no server paths.
	_, bob := signInLocal(t, s, "bob")
	doc, _ = fetchPage(t, bob, "/projects/new", 200)
	n, u := doc.Find(`input#name`), doc.Find(`input#git_url`)
	if attrOf(n, "placeholder") != "bob/app" || !strings.Contains(textOf(doc.Find(`label[for="name"]`)), "named under bob/") ||
		strings.Contains(attrOf(u, "placeholder"), "/srv/") || textOf(doc.Find(`label[for="git_url"]`)) != "Git URL" {
		t.Errorf("a non-admin's form: name %q (%q), URL %q (%q)", attrOf(n, "placeholder"), textOf(doc.Find(`label[for="name"]`)),
			attrOf(u, "placeholder"), textOf(doc.Find(`label[for="git_url"]`)))
	}
}

// unreachableJobs is the runner while the Docker engine does not answer.
type unreachableJobs struct {
	Jobs
	msg string
}

func (u unreachableJobs) Unreachable() string { return u.msg }

func (u unreachableJobs) Engines() []runner.EngineState {
	es := u.Jobs.Engines()
	for i := range es {
		es[i].Ready, es[i].Down = false, true
	}
	return es
}

// While Docker does not answer, every page of a signed-in person says so.
func TestPageDockerBanner(t *testing.T) {
	const msg = "Docker is not reachable at unix:///var/run/docker.sock — jobs will wait"
	s := newTestServer(t)
	s.Handler.jobs = unreachableJobs{Jobs: s.Handler.jobs, msg: msg}
	b := newBrowser(t, s)
	p := ownedProject(t, s, b, "octocat/Hello-World", 1296269)
	build, job := buildWithLog(t, s, p, "refs/heads/main", "abc", "m", "ok\n", store.JobSuccess)
	project := fmt.Sprintf("/projects/%d", p.ID)
	buildURL := fmt.Sprintf("%s/builds/%d", project, build.Number)
	for _, path := range []string{"/", "/account", project, project + "/settings", project + "/hooks/new", buildURL, fmt.Sprintf("%s/jobs/%d", buildURL, job.ID)} {
		doc, _ := fetchPage(t, b, path, 200)
		banner := doc.Find("#" + views.BannerID)
		if banner.Length() != 1 || textOf(banner) != msg || !banner.HasClass("banner") || attrOf(banner, "role") != "alert" {
			t.Errorf("%s: banner %d× %q", path, banner.Length(), textOf(banner))
		}
		if banner.Closest("main").Length() != 0 || banner.Prev().Is("header.top") != true {
			t.Errorf("%s: the banner is not right under the top bar", path)
		}
	}
	// Not for visitors, and not when Docker answers.
	if doc, _ := fetchPage(t, newBrowser(t, s), "/login", 200); doc.Find("#"+views.BannerID).Length() != 0 {
		t.Error("the banner shows to visitors")
	}
	ok := newTestServer(t)
	okB := newBrowser(t, ok)
	okB.signIn("/")
	if doc, _ := fetchPage(t, okB, "/", 200); doc.Find("#"+views.BannerID).Length() != 0 {
		t.Error("the banner shows while Docker answers")
	}
}

func TestPageBuild(t *testing.T) {
	s := newTestServer(t)
	owner := newBrowser(t, s)
	ctx := context.Background()
	p := ownedProject(t, s, owner, "octocat/Hello-World", 1296269)
	bs := signInTeam(t, s, p)
	bs["octocat"] = owner
	for _, title := range []string{"unit", "lint"} {
		if _, err := s.db.CreateHook(ctx, store.Hook{ProjectID: p.ID, Title: title, DockerImage: "busybox", BuildScript: "#!/bin/sh"}); err != nil {
			t.Fatal(err)
		}
	}
	const sha = "6113728f27ae82c7b1a177c8d03f9e96e0adf246"
	build, jobs, err := s.db.CreateBuild(ctx, store.NewBuild{ProjectID: p.ID, Ref: "refs/heads/main", SHA: sha, Author: "Ann",
		Message: "Fix the parser\n\nIt broke on empty input."})
	if err != nil {
		t.Fatal(err)
	}
	jobOf := map[string]store.Job{}
	for _, j := range jobs {
		jobOf[j.HookTitle] = j
	}
	moveJob(t, s, jobOf["lint"].ID, store.JobSuccess, store.CacheHit)
	moveJob(t, s, jobOf["unit"].ID, store.JobFailure, store.CacheMiss)
	buildURL := fmt.Sprintf("/projects/%d/builds/%d", p.ID, build.Number)
	jobURL := func(id int64) string { return fmt.Sprintf("%s/jobs/%d", buildURL, id) }
	polls := func(table *goquery.Selection) bool {
		_, get := table.Attr("hx-get")
		_, trigger := table.Attr("hx-trigger")
		_, swap := table.Attr("hx-swap")
		if get || trigger || swap {
			want := map[string]string{"hx-get": buildURL, "hx-trigger": "every 2s", "hx-swap": "outerHTML"}
			for k, v := range want {
				if got := attrOf(table, k); got != v {
					t.Errorf("jobs table %s=%q, want %q", k, got, v)
				}
			}
			return true
		}
		return false
	}

	doc, body := fetchPage(t, owner, buildURL, 200)
	checkWholePage(t, "build", doc, body)
	checkSignedIn(t, "build", doc, "octocat")
	checkInert(t, "build", doc, body)
	if got := doc.Find("title").Text(); got != "#1 · octocat/Hello-World · Kozmic" {
		t.Errorf("title %q", got)
	}
	if got := textOf(doc.Find("main > .head h1")); got != "Build #1" {
		t.Errorf("h1 %q", got)
	}
	if a := doc.Find("main > .head a"); attrOf(a, "href") != fmt.Sprintf("/projects/%d", p.ID) || textOf(a) != "octocat/Hello-World" {
		t.Errorf("project link %q to %q", textOf(a), attrOf(a, "href"))
	}
	if got := doc.Find("p.message").Text(); got != "Fix the parser\n\nIt broke on empty input." {
		t.Errorf("message %q", got)
	}
	meta := doc.Find("section.panel p.muted").First()
	if got := textOf(meta); !strings.HasPrefix(got, "Ann · push · refs/heads/main · "+sha+" · just now") {
		t.Errorf("meta %q", got)
	}
	if a := meta.Find("a"); attrOf(a, "href") != s.github.WebURL().String()+"/octocat/Hello-World/commit/"+sha || a.Find("code").Text() != sha {
		t.Errorf("commit link %q to %q", textOf(a), attrOf(a, "href"))
	}
	table := doc.Find("#" + views.JobsTableID)
	if table.Length() != 1 || polls(table) {
		t.Errorf("a finished build's jobs table (%d) polls", table.Length())
	}
	checkStatus(t, "build", table.Find(".head > .status"), "failed", "status-failure")
	if got := textOf(table.Find(".head > span.muted").Not(".queued")); !durationRE.MatchString(got) {
		t.Errorf("build duration %q", got)
	}
	if got := textOf(table.Find(".head > span.queued")); !strings.HasPrefix(got, "queued ") || !durationRE.MatchString(strings.TrimPrefix(got, "queued ")) {
		t.Errorf("build queue time %q", got)
	}
	rows := table.Find("ul.rows > li")
	if rows.Length() != 2 {
		t.Fatalf("%d job rows, want 2", rows.Length())
	}
	for i, tt := range []struct {
		title, word, class, cache string
	}{
		{"lint", "passed", "status-success", "cache hit"},
		{"unit", "failed", "status-failure", "cache miss"},
	} {
		row := rows.Eq(i)
		checkStatus(t, tt.title, row.Find(".status"), tt.word, tt.class)
		if a := row.Find("a"); textOf(a) != tt.title || attrOf(a, "href") != jobURL(jobOf[tt.title].ID) {
			t.Errorf("row %d: %q to %q, want %s", i, textOf(a), attrOf(a, "href"), tt.title)
		}
		if got := textOf(row.Find("span.tag")); got != tt.cache {
			t.Errorf("%s: tags %q, want %q", tt.title, got, tt.cache)
		}
		if got := textOf(row.Children().Last()); !durationRE.MatchString(got) {
			t.Errorf("%s: duration %q", tt.title, got)
		}
	}

	if n := doc.Find(".flash").Length(); n != 0 {
		t.Errorf("build: %d flashes unasked", n)
	}
	// A build asked for again: this one, and why.
	doc, _ = fetchPage(t, owner, buildURL+"?existing", 200)
	if f := doc.Find("main > p.flash"); !strings.HasPrefix(textOf(f), "This commit was built before: here is that build.") || !f.HasClass("flash-ok") || attrOf(f, "role") != "status" {
		t.Errorf("existing build: flash %q", textOf(f))
	}

	// Only those who may configure may re-run.
	for _, tt := range []struct {
		login string
		rerun bool
	}{{"octocat", true}, {"hubot", true}, {"monalisa", false}} {
		doc, _ := fetchPage(t, bs[tt.login], buildURL, 200)
		if form := doc.Find("#" + views.JobsTableID + " form"); tt.rerun {
			checkForm(t, "build as "+tt.login, form, buildURL+"/rerun", "Re-run failed jobs")
		} else if form.Length() != 0 {
			t.Errorf("build as %s: %d forms", tt.login, form.Length())
		}
	}

	// Re-run: the build polls, and shows the waiting second attempt.
	if res, _ := owner.do("POST", buildURL+"/rerun", url.Values{}); res.StatusCode != 303 {
		t.Fatalf("re-run: %d", res.StatusCode)
	}
	all, _ := s.db.Jobs(ctx, build.ID)
	second := all[len(all)-1]
	if second.HookTitle != "unit" || second.Attempt != 2 {
		t.Fatalf("after re-run the last job is %s attempt %d", second.HookTitle, second.Attempt)
	}
	for _, doc := range []*goquery.Document{func() *goquery.Document { d, _ := fetchPage(t, owner, buildURL, 200); return d }(), fetchPoll(t, owner, buildURL, views.JobsTableID)} {
		table := doc.Find("#" + views.JobsTableID)
		if table.Length() != 1 || !polls(table) {
			t.Errorf("an unfinished build's jobs table (%d) does not poll", table.Length())
		}
		if table.Find(`form[action$="/rerun"]`).Length() != 0 {
			t.Error("an unfinished build offers a re-run")
		}
		checkForm(t, "unfinished build", table.Find(`form[action$="/cancel"]`), buildURL+"/cancel", "Cancel build")
		rows := table.Find("ul.rows > li")
		if rows.Length() != 2 {
			t.Fatalf("%d job rows after re-run, want 2 (the latest attempts)", rows.Length())
		}
		row := rows.Eq(1)
		checkStatus(t, "second attempt", row.Find(".status"), "enqueued", "status-enqueued")
		if a := row.Find("a"); attrOf(a, "href") != jobURL(second.ID) {
			t.Errorf("second attempt links to %q", attrOf(a, "href"))
		}
		if got := textOf(row.Find("span.tag")); got != "attempt 2" {
			t.Errorf("second attempt tags %q", got)
		}
		if got := textOf(row.Children().Last()); durationRE.MatchString(got) {
			t.Errorf("the attempt that never started shows a duration %q", got)
		}
	}
	// Once it is finished again, the poll's answer stops polling.
	if res, _ := owner.do("POST", jobURL(second.ID)+"/cancel", url.Values{}); res.StatusCode != 303 {
		t.Fatalf("cancel: %d", res.StatusCode)
	}
	table = fetchPoll(t, owner, buildURL, views.JobsTableID).Find("#" + views.JobsTableID)
	if polls(table) {
		t.Error("the poll's answer for a finished build polls on")
	}
	checkStatus(t, "canceled", table.Find(".head > .status"), "error", "status-error")
	checkForm(t, "canceled", table.Find("form"), buildURL+"/rerun", "Re-run failed jobs")

	// A build of a project that is not on GitHub links to no commit.
	local, err := s.db.CreateProject(ctx, store.NewProject{OwnerID: 1, Source: store.SourceGit, GitURL: "/srv/git/x.git", FullName: "local/x", WebhookSecret: "s"})
	if err != nil {
		t.Fatal(err)
	}
	lb, _ := buildWithLog(t, s, local, "refs/heads/main", sha, "m", "", store.JobSuccess)
	doc, _ = fetchPage(t, owner, fmt.Sprintf("/projects/%d/builds/%d", local.ID, lb.Number), 200)
	if meta := doc.Find("section.panel p.muted").First(); meta.Find("a").Length() != 0 || meta.Find("code").Text() != sha {
		t.Errorf("local build: commit %q, %d links", meta.Find("code").Text(), meta.Find("a").Length())
	}
}

func TestPageJob(t *testing.T) {
	s := newTestServer(t)
	owner := newBrowser(t, s)
	ctx := context.Background()
	p := ownedProject(t, s, owner, "octocat/Hello-World", 1296269)
	bs := signInTeam(t, s, p)
	bs["octocat"] = owner
	build, first := buildWithLog(t, s, p, "refs/heads/main", "abc", "m", "ok\n", store.JobFailure)
	buildURL := fmt.Sprintf("/projects/%d/builds/%d", p.ID, build.Number)
	jobURL := func(id int64) string { return fmt.Sprintf("%s/jobs/%d", buildURL, id) }
	if res, _ := owner.do("POST", jobURL(first.ID)+"/restart", url.Values{}); res.StatusCode != 303 {
		t.Fatalf("restart: %d", res.StatusCode)
	}
	all, _ := s.db.Jobs(ctx, build.ID)
	second := all[1]

	head := func(where string, doc *goquery.Document, id int64, word, class string, cancel, restart bool) {
		t.Helper()
		h := doc.Find("#" + views.JobHeadID)
		if h.Length() != 1 || attrOf(h, "sse-swap") != "end" || attrOf(h, "hx-swap") != "outerHTML" {
			t.Errorf("%s: %d heads, sse-swap %q hx-swap %q", where, h.Length(), attrOf(h, "sse-swap"), attrOf(h, "hx-swap"))
		}
		checkStatus(t, where, h.Find("#"+views.JobStatusID+" > .status"), word, class)
		if f := h.Find(`form[action$="/cancel"]`); cancel {
			checkForm(t, where, f, jobURL(id)+"/cancel", "Cancel")
			if !f.HasClass("confirm") || attrOf(f, "data-confirm") != "Cancel this job?" {
				t.Errorf("%s: cancel is not confirmed: class %q", where, attrOf(f, "class"))
			}
		} else if f.Length() != 0 {
			t.Errorf("%s: offers to cancel", where)
		}
		if f := h.Find(`form[action$="/restart"]`); restart {
			checkForm(t, where, f, jobURL(id)+"/restart", "Restart")
		} else if f.Length() != 0 {
			t.Errorf("%s: offers to restart", where)
		}
		if a := h.Find("a"); a.Length() != 1 || textOf(a) != "Raw log" || attrOf(a, "href") != jobURL(id)+"/log.txt" {
			t.Errorf("%s: raw log link %q to %q", where, textOf(a), attrOf(a, "href"))
		}
	}
	attempts := func(where string, doc *goquery.Document, current string, links map[string]string) {
		t.Helper()
		line := doc.Find("p.muted").FilterFunction(func(_ int, s *goquery.Selection) bool { return strings.HasPrefix(textOf(s), "Attempts:") })
		if line.Length() != 1 || textOf(line.Find("strong")) != current || line.Find(".status").Length() != 2 {
			t.Errorf("%s: attempts %q", where, textOf(line))
		}
		for n, href := range links {
			if a := line.Find(`a[href="` + href + `"]`); textOf(a) != n {
				t.Errorf("%s: attempt %s links %q", where, n, textOf(a))
			}
		}
	}

	// The waiting second attempt: it streams its log, follows it, and can be canceled.
	doc, body := fetchPage(t, owner, jobURL(second.ID), 200)
	checkSignedIn(t, "job", doc, "octocat")
	checkInert(t, "job", doc, body)
	if got := doc.Find("title").Text(); got != "test · #1 · octocat/Hello-World · Kozmic" {
		t.Errorf("title %q", got)
	}
	if got := textOf(doc.Find("main > .head h1")); got != "test" {
		t.Errorf("h1 %q", got)
	}
	if a := doc.Find(`main > .head a[href="` + buildURL + `"]`); textOf(a) != "Build #1" {
		t.Errorf("build link %q", textOf(a))
	}
	if a := doc.Find(fmt.Sprintf(`main > .head a[href="/projects/%d"]`, p.ID)); textOf(a) != "octocat/Hello-World" {
		t.Errorf("project link %q", textOf(a))
	}
	head("enqueued job", doc, second.ID, "enqueued", "status-enqueued", true, false)
	sec := doc.Find("section[sse-connect]")
	if sec.Length() != 1 || attrOf(sec, "hx-ext") != "sse" || attrOf(sec, "sse-connect") != jobURL(second.ID)+"/log/stream" || attrOf(sec, "sse-close") != "end" {
		t.Errorf("stream: %d sections, hx-ext %q sse-connect %q sse-close %q", sec.Length(), attrOf(sec, "hx-ext"), attrOf(sec, "sse-connect"), attrOf(sec, "sse-close"))
	}
	if l := sec.Find("#" + views.LogID); l.Length() != 1 || !l.HasClass("log") || attrOf(l, "sse-swap") != "line" || attrOf(l, "hx-swap") != "beforeend" {
		t.Errorf("log: %d, sse-swap %q hx-swap %q", l.Length(), attrOf(l, "sse-swap"), attrOf(l, "hx-swap"))
	}
	if f := doc.Find(`#` + views.JobHeadID + ` label.follow input#follow[type="checkbox"]`); f.Length() != 1 || attrOf(f, "checked") == "<no checked>" {
		t.Errorf("follow checkbox: %d, checked %q", f.Length(), attrOf(f, "checked"))
	}
	attempts("second attempt", doc, "2", map[string]string{"1": jobURL(first.ID)})

	// The first attempt: finished, not the latest, so no actions.
	doc, _ = fetchPage(t, owner, jobURL(first.ID), 200)
	head("first attempt", doc, first.ID, "failed", "status-failure", false, false)
	if got := textOf(doc.Find("#" + views.JobStatusID + " span.muted")); !durationRE.MatchString(got) {
		t.Errorf("first attempt duration %q", got)
	}
	attempts("first attempt", doc, "1", map[string]string{"2": jobURL(second.ID)})

	// Who may cancel the waiting attempt.
	for _, tt := range []struct {
		login  string
		cancel bool
	}{{"hubot", true}, {"monalisa", false}} {
		doc, _ := fetchPage(t, bs[tt.login], jobURL(second.ID), 200)
		head("enqueued job as "+tt.login, doc, second.ID, "enqueued", "status-enqueued", tt.cancel, false)
	}

	// Canceled: it says by whom, and who may restart it.
	if res, _ := bs["hubot"].do("POST", jobURL(second.ID)+"/cancel", url.Values{}); res.StatusCode != 303 {
		t.Fatalf("cancel: %d", res.StatusCode)
	}
	for _, tt := range []struct {
		login   string
		restart bool
	}{{"octocat", true}, {"hubot", true}, {"monalisa", false}} {
		doc, _ := fetchPage(t, bs[tt.login], jobURL(second.ID), 200)
		where := "canceled job as " + tt.login
		head(where, doc, second.ID, "error", "status-error", false, tt.restart)
		if got := textOf(doc.Find("#" + views.JobHeadID + " > span.muted")); got != "canceled by hubot" {
			t.Errorf("%s: error %q", where, got)
		}
	}

	// A finished job's page holds its log's first page instead of streaming it.
	doc, _ = fetchPage(t, owner, jobURL(first.ID), 200)
	if n := doc.Find("[sse-connect], [hx-ext], [sse-swap=line], #follow").Length(); n != 0 {
		t.Errorf("finished job: %d elements stream the log or follow it", n)
	}
	if lines := doc.Find("#" + views.LogID + " > div.log-page.log-lines > p"); lines.Length() != 1 || attrOf(lines, "id") != "L1" || textOf(lines) != "ok" ||
		doc.Find("."+views.LogMoreClass).Length() != 0 {
		t.Errorf("finished job: %d lines, %q, %d placeholders", lines.Length(), textOf(lines), doc.Find("."+views.LogMoreClass).Length())
	}
	// The page it loads: its lines, with ids to link them by; members may read it.
	for _, login := range []string{"octocat", "monalisa"} {
		doc, body := fetchPage(t, bs[login], jobURL(first.ID)+"/log", 200)
		checkInert(t, "log page as "+login, doc, body)
		lines := doc.Find("body > div.log-page.log-lines > p")
		if lines.Length() != 1 || attrOf(lines, "id") != "L1" || textOf(lines) != "ok" {
			t.Errorf("log page as %s: %d lines, %q", login, lines.Length(), textOf(lines))
		}
		if n := doc.Find("." + views.LogMoreClass).Length(); n != 0 {
			t.Errorf("log page as %s: a placeholder after the last page", login)
		}
	}
	if res, _ := bs["eve"].do("GET", jobURL(first.ID)+"/log", nil); res.StatusCode != 404 {
		t.Errorf("log page as a stranger: %d, want 404", res.StatusCode)
	}

	// The end of the log stream sends the head again, as it is now.
	evs := readEvents(t, owner, jobURL(second.ID)+"/log/stream", "")
	if len(evs) == 0 || evs[len(evs)-1].event != "end" {
		t.Fatalf("stream events %+v", evs)
	}
	end := parse(t, evs[len(evs)-1].data)
	if n := end.Find("body").Children().Length(); n != 1 {
		t.Errorf("the end event holds %d elements, want the head only", n)
	}
	head("end event", end, second.ID, "error", "status-error", false, true)
	monaEnd := readEvents(t, bs["monalisa"], jobURL(second.ID)+"/log/stream", "")
	head("end event as monalisa", parse(t, monaEnd[len(monaEnd)-1].data), second.ID, "error", "status-error", false, false)
}

func TestPageSettings(t *testing.T) {
	s := newTestServer(t)
	owner := newBrowser(t, s)
	ctx := context.Background()
	p := ownedProject(t, s, owner, "octocat/Hello-World", 1296269)
	bs := signInTeam(t, s, p)
	settingsURL := fmt.Sprintf("/projects/%d/settings", p.ID)

	doc, _ := fetchPage(t, owner, settingsURL, 200)
	if got := doc.Find("title").Text(); got != "Settings · octocat/Hello-World · Kozmic" {
		t.Errorf("title %q", got)
	}
	if got := textOf(doc.Find("main > .head h1")); got != "Settings" {
		t.Errorf("h1 %q", got)
	}
	if a := doc.Find("main > .head a"); attrOf(a, "href") != fmt.Sprintf("/projects/%d", p.ID) || textOf(a) != "octocat/Hello-World" {
		t.Errorf("project link %q to %q", textOf(a), attrOf(a, "href"))
	}
	hooks := doc.Find("section.panel").Eq(0)
	if a := hooks.Find("a.button"); textOf(a) != "New hook" || attrOf(a, "href") != fmt.Sprintf("/projects/%d/hooks/new", p.ID) {
		t.Errorf("new hook link %q to %q", textOf(a), attrOf(a, "href"))
	}
	if got := textOf(hooks.Find("p.muted")); !strings.HasPrefix(got, "No hooks yet") || hooks.Find("li").Length() != 0 {
		t.Errorf("hooks empty state %q", got)
	}

	unit, err := s.db.CreateHook(ctx, store.Hook{ProjectID: p.ID, Title: "unit", DockerImage: "golang:1.26", BuildScript: "#!/bin/sh", InstallScript: "#!/bin/sh\ngo mod download"})
	if err != nil {
		t.Fatal(err)
	}
	lint, err := s.db.CreateHook(ctx, store.Hook{ProjectID: p.ID, Title: "lint", DockerImage: "golangci/golangci-lint", BuildScript: "#!/bin/sh"})
	if err != nil {
		t.Fatal(err)
	}
	const value = "value-of-DEPLOY_TOKEN-nobody-reads"
	for _, name := range []string{"DEPLOY_TOKEN", "API_KEY"} {
		if err := s.db.SetSecret(ctx, p.ID, store.Secret{Name: name, Value: value}); err != nil {
			t.Fatal(err)
		}
	}

	for _, tt := range []struct {
		who   *browser
		flash string
		shown string
	}{
		{owner, "", ""},
		{owner, "hook-saved", "Hook saved. Run a build below to run it: on a commit built before, that adds its job to that build."},
		{owner, "hook-deleted", "Hook deleted."},
		{owner, "secret-saved", "Secret saved."},
		{owner, "secret-deleted", "Secret deleted."},
		{owner, xssScript, ""},
		{bs["hubot"], "", ""},
	} {
		where := "settings?flash=" + tt.flash
		doc, body := fetchPage(t, tt.who, settingsURL+"?flash="+url.QueryEscape(tt.flash), 200)
		checkInert(t, where, doc, body)
		if f := doc.Find(".flash"); tt.shown == "" && f.Length() != 0 || tt.shown != "" && (textOf(f) != tt.shown || !f.HasClass("flash-ok") || attrOf(f, "role") != "status") {
			t.Errorf("%s: flash %q, want %q", where, textOf(f), tt.shown)
		}
		if strings.Contains(body, value) {
			t.Errorf("%s: a secret's value shows", where)
		}
		hooks := doc.Find("section.panel").Eq(0)
		if hooks.Find("p.muted").Length() != 0 {
			t.Errorf("%s: the empty state shows beside hooks", where)
		}
		if n := hooks.Find("li").Length(); n != 2 {
			t.Errorf("%s: %d hook rows", where, n)
		}
		for _, hk := range []struct {
			store.Hook
			install bool
		}{{unit, true}, {lint, false}} {
			path := fmt.Sprintf("/projects/%d/hooks/%d", p.ID, hk.ID)
			li := hooks.Find(`a[href="` + path + `"]`).Closest("li")
			if textOf(li.Find("a")) != hk.Title || textOf(li.Find("code")) != hk.DockerImage {
				t.Errorf("%s: hook row %q", where, textOf(li))
			}
			if got := li.Find("span.tag").Length() == 1 && textOf(li.Find("span.tag")) == "install script"; got != hk.install {
				t.Errorf("%s: %s install tag %v", where, hk.Title, got)
			}
			form := li.Find("form")
			checkForm(t, where+" delete "+hk.Title, form, path+"/delete", "Delete")
			if !form.HasClass("confirm") || attrOf(form, "data-confirm") != "Delete the hook "+hk.Title+"? Past jobs keep their logs." {
				t.Errorf("%s: delete %s asks %q", where, hk.Title, attrOf(form, "data-confirm"))
			}
		}
		secrets := doc.Find("section.panel").Eq(1)
		if got := textOf(secrets.Find("h2")); got != "Secrets" {
			t.Fatalf("%s: second panel %q", where, got)
		}
		var names []string
		secrets.Find("li").Each(func(_ int, li *goquery.Selection) {
			name := li.Find("code").Text()
			names = append(names, name)
			form := li.Find("form")
			checkForm(t, where+" delete "+name, form, fmt.Sprintf("/projects/%d/secrets/%s/delete", p.ID, name), "Delete")
			if !form.HasClass("confirm") || attrOf(form, "data-confirm") != "Delete the secret "+name+"?" {
				t.Errorf("%s: delete %s asks %q", where, name, attrOf(form, "data-confirm"))
			}
		})
		if strings.Join(names, ",") != "API_KEY,DEPLOY_TOKEN" {
			t.Errorf("%s: secrets %q", where, names)
		}
		set := secrets.Children().Last()
		checkForm(t, where+" set secret", set, fmt.Sprintf("/projects/%d/secrets", p.ID), "Set")
		if in := set.Find(`input[name="name"]`); attrOf(in, "pattern") != "[A-Za-z_][A-Za-z0-9_]*" || attrOf(in, "required") == "<no required>" {
			t.Errorf("%s: name input pattern %q", where, attrOf(in, "pattern"))
		}
		if in := set.Find(`input[name="value"]`); attrOf(in, "type") != "password" || attrOf(in, "value") != "<no value>" || attrOf(in, "autocomplete") != "new-password" {
			t.Errorf("%s: value input type %q value %q", where, attrOf(in, "type"), attrOf(in, "value"))
		}
	}

	// A refused secret says why, and does not echo the value.
	res, body := owner.do("POST", fmt.Sprintf("/projects/%d/secrets", p.ID), url.Values{"name": {xssImg}, "value": {"typed-" + value}})
	doc = parse(t, body)
	if f := doc.Find("p.flash.flash-error"); res.StatusCode != 422 || attrOf(f, "role") != "alert" || !strings.HasPrefix(textOf(f), "A secret name uses letters") {
		t.Errorf("bad secret name: %d, %q", res.StatusCode, textOf(f))
	}
	checkInert(t, "bad secret name", doc, body)
	if strings.Contains(body, value) {
		t.Error("the refused secret's value is echoed")
	}

	// Members are not let in.
	doc, _ = fetchPage(t, bs["monalisa"], settingsURL, 403)
	if got := textOf(doc.Find("main h1")); got != "Not allowed" || textOf(doc.Find("main p.code")) != "403" || strings.Contains(doc.Text(), "DEPLOY_TOKEN") {
		t.Errorf("member: h1 %q", got)
	}
}

func TestPageHookForm(t *testing.T) {
	s := newTestServer(t)
	b := newBrowser(t, s)
	ctx := context.Background()
	p := ownedProject(t, s, b, "octocat/Hello-World", 1296269)
	hk, err := s.db.CreateHook(ctx, store.Hook{ProjectID: p.ID, Title: "unit", DockerImage: "golang:1.26",
		InstallScript: "#!/bin/sh\ngo mod download\n", BuildScript: "#!/bin/sh\ngo test ./...\n", TrackedFiles: []string{"go.mod", "go.sum"}})
	if err != nil {
		t.Fatal(err)
	}
	settings := fmt.Sprintf("/projects/%d/settings", p.ID)
	type fields struct{ title, image, install, tracked, build string }
	check := func(where string, doc *goquery.Document, h1, action string, want fields) {
		t.Helper()
		if got := doc.Find("title").Text(); got != "Hook · octocat/Hello-World · Kozmic" {
			t.Errorf("%s: title %q", where, got)
		}
		if got := textOf(doc.Find("main > .head h1")); h1 != "" && got != h1 {
			t.Errorf("%s: h1 %q, want %q", where, got, h1)
		}
		if a := doc.Find("main > .head a"); attrOf(a, "href") != settings || textOf(a) != "octocat/Hello-World settings" {
			t.Errorf("%s: settings link %q to %q", where, textOf(a), attrOf(a, "href"))
		}
		form := doc.Find("form.stack")
		checkForm(t, where, form, action, "Save")
		for _, f := range []struct {
			sel, got, want string
		}{
			{`input#title[name="title"][required]`, attrOf(form.Find(`input#title[name="title"][required]`), "value"), want.title},
			{`input#image[name="image"][required]`, attrOf(form.Find(`input#image[name="image"][required]`), "value"), want.image},
			{`textarea#install[name="install"]`, form.Find(`textarea#install[name="install"]`).Text(), want.install},
			{`textarea#tracked[name="tracked"]`, form.Find(`textarea#tracked[name="tracked"]`).Text(), want.tracked},
			{`textarea#build[name="build"][required]`, form.Find(`textarea#build[name="build"][required]`).Text(), want.build},
		} {
			if f.got != f.want {
				t.Errorf("%s: %s holds %q, want %q", where, f.sel, f.got, f.want)
			}
		}
		if ph := attrOf(form.Find("input#image"), "placeholder"); ph != "golang:1.26" {
			t.Errorf("%s: image placeholder %q", where, ph)
		}
		for _, id := range []string{"title", "image", "install", "tracked", "build"} {
			if form.Find(`label[for="`+id+`"]`).Length() != 1 {
				t.Errorf("%s: no label for %s", where, id)
			}
		}
	}

	doc, body := fetchPage(t, b, fmt.Sprintf("/projects/%d/hooks/new", p.ID), 200)
	checkSignedIn(t, "new hook", doc, "octocat")
	checkInert(t, "new hook", doc, body)
	check("new hook", doc, "New hook", fmt.Sprintf("/projects/%d/hooks", p.ID), fields{image: "", build: "#!/bin/sh\nset -e\n"})
	if doc.Find(".flash").Length() != 0 {
		t.Error("new hook: an error shows before saving")
	}

	edit := fmt.Sprintf("/projects/%d/hooks/%d", p.ID, hk.ID)
	doc, _ = fetchPage(t, b, edit, 200)
	check("edit hook", doc, "unit", edit, fields{"unit", "golang:1.26", "#!/bin/sh\ngo mod download\n", "go.mod\ngo.sum", "#!/bin/sh\ngo test ./...\n"})

	// Refused: the form again with what was typed and why.
	res, body := b.do("POST", edit, url.Values{"title": {""}, "image": {"golang:1.27"}, "install": {""}, "tracked": {"a\r\nb"}, "build": {"#!/bin/bash\r\nmake\r\n"}})
	if res.StatusCode != 422 {
		t.Fatalf("untitled hook: %d", res.StatusCode)
	}
	doc = parse(t, body)
	if f := doc.Find("p.flash.flash-error"); textOf(f) != "A hook needs a title." || attrOf(f, "role") != "alert" {
		t.Errorf("untitled hook: flash %q", textOf(f))
	}
	// (Its h1 is left unchecked: it shows the typed, empty title.)
	check("untitled hook", doc, "", edit, fields{"", "golang:1.27", "", "a\nb", "#!/bin/bash\nmake\n"})
}

func TestPageDeleteProject(t *testing.T) {
	s := newTestServer(t)
	owner := newBrowser(t, s)
	p := ownedProject(t, s, owner, "octocat/Hello-World", 1296269)
	bs := signInTeam(t, s, p)
	path := fmt.Sprintf("/projects/%d/delete", p.ID)

	doc, body := fetchPage(t, owner, path, 200)
	checkSignedIn(t, "delete", doc, "octocat")
	checkInert(t, "delete", doc, body)
	if got := doc.Find("title").Text(); got != "Delete octocat/Hello-World · Kozmic" {
		t.Errorf("title %q", got)
	}
	if got := textOf(doc.Find("main h1")); got != "Delete octocat/Hello-World?" {
		t.Errorf("h1 %q", got)
	}
	if got := textOf(doc.Find("main section p")); !strings.Contains(got, "removes Kozmic's webhook and deploy key from the repository on GitHub") || !strings.HasSuffix(got, "It cannot be undone.") {
		t.Errorf("the page does not say what deleting does, or that it is final: %q", got)
	}
	form := doc.Find("main form")
	checkForm(t, "delete", form, path, "Delete the project")
	if !form.Find("button").HasClass("danger-button") {
		t.Error("the delete button does not look dangerous")
	}
	if a := form.Find("a"); textOf(a) != "Cancel" || attrOf(a, "href") != fmt.Sprintf("/projects/%d", p.ID) {
		t.Errorf("cancel link %q to %q", textOf(a), attrOf(a, "href"))
	}
	if doc.Find(".flash").Length() != 0 {
		t.Error("an error shows before trying")
	}

	for _, login := range []string{"hubot", "monalisa"} {
		doc, _ := fetchPage(t, bs[login], path, 403)
		if got := textOf(doc.Find("main h1")); got != "Not allowed" || textOf(doc.Find("main p.code")) != "403" || doc.Find("main form").Length() != 0 {
			t.Errorf("%s: h1 %q", login, got)
		}
	}
	if _, err := s.db.ProjectByID(context.Background(), p.ID); err != nil {
		t.Fatal(err)
	}

	// GitHub refuses: the page again, with GitHub's answer and Delete anyway (which tries GitHub again first).
	s.db.SetGitHubHookID(context.Background(), p.ID, 12345678)
	s.github.Script("DELETE "+repoAPI+"/hooks/12345678", fakegithub.Reply{Status: 403, Body: `{"message":"Must have admin rights to Repository."}`})
	res, body := owner.do("POST", path, url.Values{})
	doc = parse(t, body)
	if f := doc.Find("p.flash.flash-error"); res.StatusCode != 502 || attrOf(f, "role") != "alert" || textOf(f) != "GitHub answered: Must have admin rights to Repository." {
		t.Errorf("refused: %d, flash %q", res.StatusCode, textOf(f))
	}
	checkForm(t, "refused", doc.Find("main form"), path+"/anyway", "Delete anyway")
}

func TestPageAccount(t *testing.T) {
	s := newTestServer(t)
	b := newBrowser(t, s)
	const avatar = "https://avatars.example/u/1?v=4&s=40"
	s.github.Script("GET /api/v3/user", fakegithub.Reply{Status: 200,
		Body: `{"login": "octocat", "id": 1, "type": "User", "name": "Mona <b>Lisa</b>", "avatar_url": "` + avatar + `"}`})
	if res := b.signIn("/"); res.StatusCode != 303 {
		t.Fatalf("sign in: %d", res.StatusCode)
	}
	check := func(where string, doc *goquery.Document, email string) {
		t.Helper()
		checkSignedIn(t, where, doc, "octocat")
		if got := doc.Find("title").Text(); got != "Account · Kozmic" {
			t.Errorf("%s: title %q", where, got)
		}
		if got := textOf(doc.Find("main h1")); got != "Account" {
			t.Errorf("%s: h1 %q", where, got)
		}
		who := doc.Find("p.who")
		if textOf(who.Find("strong")) != "octocat" || who.Find("span.muted").Text() != "Mona <b>Lisa</b>" || who.Find("b").Length() != 0 {
			t.Errorf("%s: who %q", where, textOf(who))
		}
		if img := doc.Find("img"); img.Length() != 1 || !img.HasClass("avatar") || attrOf(img, "src") != avatar || attrOf(img, "alt") != "" {
			t.Errorf("%s: %d images, src %q", where, img.Length(), attrOf(img, "src"))
		}
		form := doc.Find(`main form[action="/account"]`)
		checkForm(t, where, form, "/account", "Save")
		if n := doc.Find(`form[action="/account/password"], input[type="password"]`).Length(); n != 0 {
			t.Errorf("%s: a GitHub account is offered a password (%d elements)", where, n)
		}
		in := form.Find(`input#email[name="email"]`)
		if attrOf(in, "type") != "email" || attrOf(in, "value") != email || form.Find(`label[for="email"]`).Length() != 1 {
			t.Errorf("%s: e-mail input type %q value %q", where, attrOf(in, "type"), attrOf(in, "value"))
		}
	}

	doc, _ := fetchPage(t, b, "/account", 200)
	check("account", doc, "octocat@github.com")
	if doc.Find(".flash").Length() != 0 {
		t.Error("account: a flash before saving")
	}
	doc, _ = fetchPage(t, b, "/account?saved", 200)
	check("saved", doc, "octocat@github.com")
	if f := doc.Find(".flash"); textOf(f) != "Saved." || !f.HasClass("flash-ok") || attrOf(f, "role") != "status" {
		t.Errorf("saved: flash %q", textOf(f))
	}

	// A refused address is shown back as typed, as text.
	res, body := b.do("POST", "/account", url.Values{"email": {xssImg}})
	if res.StatusCode != 422 {
		t.Fatalf("bad address: %d", res.StatusCode)
	}
	doc = parse(t, body)
	check("bad address", doc, xssImg)
	if f := doc.Find(".flash"); textOf(f) != "That is not an e-mail address." || !f.HasClass("flash-error") || attrOf(f, "role") != "alert" {
		t.Errorf("bad address: flash %q", textOf(f))
	}
	if doc.Find("[onerror]").Length() != 0 || strings.Contains(body, "<img src=x") {
		t.Error("bad address: the address became markup")
	}

	// An address stored some other way is shown as text too.
	s.db.SetUserEmail(context.Background(), 1, xssScript)
	doc, body = fetchPage(t, b, "/account", 200)
	check("stored address", doc, xssScript)
	if strings.Contains(body, xssScript) || doc.Find("script:not([src])").Length() != 0 {
		t.Error("stored address: the address became markup")
	}
}

// A local account's page also changes its password.
func TestPageLocalAccount(t *testing.T) {
	_, b := signInLocal(t, newLocalTestServer(t), "ann")
	for _, tt := range []struct{ query, flash string }{{"", ""}, {"?password-changed", "Password changed. Your other sessions were signed out."}} {
		where := "account" + tt.query
		doc, body := fetchPage(t, b, "/account"+tt.query, 200)
		checkSignedIn(t, where, doc, "ann")
		checkInert(t, where, doc, body)
		if got := textOf(doc.Find("p.who")); got != "ann" {
			t.Errorf("%s: who %q", where, got)
		}
		checkForm(t, where, doc.Find(`main form[action="/account"]`), "/account", "Save")
		panel := doc.Find("section.panel").FilterFunction(func(_ int, s *goquery.Selection) bool { return textOf(s.Find("h2")) == "Password" })
		form := panel.Find("form")
		checkForm(t, where, form, "/account/password", "Change password")
		if got := attrOf(form.Find(`input[type="hidden"][name="username"]`), "value"); got != "ann" {
			t.Errorf("%s: the form names %q for password managers", where, got)
		}
		for _, f := range []struct{ id, autocomplete string }{{"current", "current-password"}, {"new", "new-password"}, {"confirm", "new-password"}} {
			in := form.Find(`input#` + f.id + `[name="` + f.id + `"][type="password"][required]`)
			if in.Length() != 1 || attrOf(in, "autocomplete") != f.autocomplete || attrOf(in, "value") != "<no value>" || form.Find(`label[for="`+f.id+`"]`).Length() != 1 {
				t.Errorf("%s: %s input %d×, autocomplete %q", where, f.id, in.Length(), attrOf(in, "autocomplete"))
			}
		}
		if in := form.Find("input#new"); attrOf(in, "minlength") != "8" || attrOf(in, "maxlength") != "72" {
			t.Errorf("%s: new password length %s..%s", where, attrOf(in, "minlength"), attrOf(in, "maxlength"))
		}
		if f := form.Find(".flash"); tt.flash == "" && f.Length() != 0 || tt.flash != "" && (textOf(f) != tt.flash || !f.HasClass("flash-ok") || attrOf(f, "role") != "status") {
			t.Errorf("%s: flash %q, want %q", where, textOf(f), tt.flash)
		}
	}
}

func TestPageNotFound(t *testing.T) {
	s := newTestServer(t)
	b := newBrowser(t, s)
	ctx := context.Background()
	p := ownedProject(t, s, b, "octocat/Hello-World", 1296269)
	build, job := buildWithLog(t, s, p, "refs/heads/main", "abc", "m", "", store.JobSuccess)
	other, err := s.db.CreateProject(ctx, store.NewProject{OwnerID: 1, Source: store.SourceGitHub, GitHubID: 5, FullName: "octocat/Secret", WebhookSecret: "s"})
	if err != nil {
		t.Fatal(err)
	}
	buildWithLog(t, s, other, "refs/heads/main", "abc", "m", "", store.JobSuccess)
	stranger := newBrowser(t, s)
	signInAs(t, s, stranger, 9, "stranger")

	for _, tt := range []struct {
		who  *browser
		path string
	}{
		{b, "/projects/999"},
		{b, "/projects/abc"},
		{b, "/projects/" + url.PathEscape(xssImg)},
		{b, fmt.Sprintf("/projects/%d/builds/99", p.ID)},
		{b, fmt.Sprintf("/projects/%d/builds/x", p.ID)},
		{b, fmt.Sprintf("/projects/%d/builds/%d/jobs/999", p.ID, build.Number)},
		{b, fmt.Sprintf("/projects/%d/builds/%d/jobs/%d", other.ID, 1, job.ID)},
		{b, fmt.Sprintf("/projects/%d/hooks/999", p.ID)},
		{b, "/no/such/page"},
		{stranger, fmt.Sprintf("/projects/%d", other.ID)},
		{stranger, fmt.Sprintf("/projects/%d/builds/1", other.ID)},
		{stranger, fmt.Sprintf("/projects/%d/settings", other.ID)},
		{newBrowser(t, s), "/no/such/page"},
	} {
		res, body := tt.who.do("GET", tt.path, nil)
		if res.StatusCode != 404 || res.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("%s: %d, Cache-Control %q", tt.path, res.StatusCode, res.Header.Get("Cache-Control"))
			continue
		}
		doc := parse(t, body)
		checkInert(t, tt.path, doc, body)
		if got := doc.Find("title").Text(); got != "Page not found · Kozmic" {
			t.Errorf("%s: title %q", tt.path, got)
		}
		if code, h1 := textOf(doc.Find("main p.code")), textOf(doc.Find("main h1")); code != "404" || h1 != "Page not found" {
			t.Errorf("%s: %q %q", tt.path, code, h1)
		}
		if a := doc.Find(`main a[href="/"]`); textOf(a) != "Back to the start page" {
			t.Errorf("%s: link home %q", tt.path, textOf(a))
		}
		if strings.Contains(body, "octocat/Secret") {
			t.Errorf("%s: the page names the hidden project", tt.path)
		}
	}

	// Anonymous visitors are sent to sign in instead, to come back.
	res, _ := newBrowser(t, s).do("GET", "/projects/999", nil)
	if res.StatusCode != 303 || res.Header.Get("Location") != "/login?next=%2Fprojects%2F999" {
		t.Errorf("anonymous: %d to %q", res.StatusCode, res.Header.Get("Location"))
	}
}

func TestPageBadge(t *testing.T) {
	s := newTestServer(t)
	b := newBrowser(t, s)
	ctx := context.Background()
	p := ownedProject(t, s, b, "octocat/Hello-World", 1296269)
	pub, err := s.db.CreateProject(ctx, store.NewProject{OwnerID: 1, Source: store.SourceGitHub, GitHubID: 77,
		FullName: "octocat/Public", IsPublic: true, DefaultBranch: "main", WebhookSecret: "s"})
	if err != nil {
		t.Fatal(err)
	}
	buildWithLog(t, s, p, "refs/heads/main", "a0", "m", "", store.JobSuccess)
	for i, tt := range []struct {
		branch string
		st     store.JobStatus
	}{{"main", store.JobSuccess}, {"dev", store.JobFailure}, {"broken", store.JobError}, {"queued", store.JobEnqueued}, {"wip", store.JobRunning}} {
		buildWithLog(t, s, pub, "refs/heads/"+tt.branch, fmt.Sprintf("a%d", i+1), "m", "", tt.st)
	}
	type svg struct {
		XMLName xml.Name `xml:"svg"`
		Label   string   `xml:"aria-label,attr"`
		Title   string   `xml:"title"`
		Rects   []struct {
			Fill string `xml:"fill,attr"`
		} `xml:"rect"`
		Texts []string `xml:"g>text"`
	}
	colours := map[string]string{}
	anon := newBrowser(t, s)
	for _, tt := range []struct{ path, word string }{
		{"/badges/octocat/Public.svg", "passing"}, // the default branch's
		{"/badges/octocat/Public.svg?ref=main", "passing"},
		{"/badges/octocat/Public.svg?ref=refs/heads/main", "passing"},
		{"/badges/octocat/Public.svg?ref=dev", "failing"},
		{"/badges/octocat/Public.svg?ref=broken", "error"},
		{"/badges/octocat/Public.svg?ref=queued", "running"},
		{"/badges/octocat/Public.svg?ref=nope", "unknown"},
		{"/badges/octocat/Hello-World.svg", "unknown"}, // private: tells nothing
		{"/badges/nobody/nothing.svg", "unknown"},
		{"/badges/octocat/Public.png", "unknown"},
	} {
		res, body := anon.do("GET", tt.path, nil)
		if res.StatusCode != 200 || res.Header.Get("Content-Type") != "image/svg+xml" || res.Header.Get("Cache-Control") != "no-cache, no-store, max-age=0" {
			t.Errorf("%s: %d %q %q", tt.path, res.StatusCode, res.Header.Get("Content-Type"), res.Header.Get("Cache-Control"))
		}
		var got svg
		if err := xml.Unmarshal([]byte(body), &got); err != nil {
			t.Errorf("%s: not XML: %v\n%s", tt.path, err, body)
			continue
		}
		if strings.Join(got.Texts, ",") != "build,"+tt.word || got.Title != "build: "+tt.word || got.Label != "build: "+tt.word {
			t.Errorf("%s: texts %q, title %q, label %q; want %s", tt.path, got.Texts, got.Title, got.Label, tt.word)
		}
		if len(got.Rects) != 2 || !regexp.MustCompile(`^#[0-9a-f]{6}$`).MatchString(got.Rects[1].Fill) {
			t.Errorf("%s: rects %+v", tt.path, got.Rects)
			continue
		}
		if c, ok := colours[tt.word]; ok && c != got.Rects[1].Fill {
			t.Errorf("%s: %s is %s here and %s elsewhere", tt.path, tt.word, got.Rects[1].Fill, c)
		}
		colours[tt.word] = got.Rects[1].Fill
	}
	if len(colours) != 5 || colours["passing"] == colours["failing"] || colours["failing"] == colours["unknown"] {
		t.Errorf("badge colours %v: each word needs its own", colours)
	}
	seen := map[string]bool{}
	for _, c := range colours {
		seen[c] = true
	}
	if len(seen) != len(colours) {
		t.Errorf("two badge words share a colour: %v", colours)
	}
}

// hostileFixture is a project in which every text a user or GitHub
// controls is hostile markup, with a build, a job canceled by a manager
// whose login is hostile, a hook and secrets.
type hostileFixture struct {
	s             *testServer
	owner         *browser
	p             store.Project
	hook          store.Hook
	build         store.Build
	job           store.Job
	secretValue   string
	webhookSecret string
	privateKey    string
}

func newHostileFixture(t *testing.T) hostileFixture {
	t.Helper()
	ctx := context.Background()
	f := hostileFixture{s: newTestServer(t), secretValue: "sv-" + xssScript + "-5f4dcc3b5aa765d6",
		webhookSecret: "wh-8f14e45fceea167a5a36dedd4bea2543", privateKey: "-----BEGIN OPENSSH PRIVATE KEY-----\npk-3c59dc048e8850243be8079a5c74d079\n"}
	s := f.s
	f.owner = newBrowser(t, s)
	signInAs(t, s, f.owner, 1, xssScript)
	manager := newBrowser(t, s)
	signInAs(t, s, manager, 2, xssImg)
	var err error
	f.p, err = s.db.CreateProject(ctx, store.NewProject{OwnerID: 1, Source: store.SourceGitHub, GitHubID: 1296269,
		FullName: "octocat/Hello-World", WebhookSecret: f.webhookSecret})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.SyncMemberships(ctx, f.p.ID, []store.GitHubAccess{{GitHubID: 2, Manage: true}}); err != nil {
		t.Fatal(err)
	}
	if err := s.db.SetDeployKey(ctx, store.DeployKey{ProjectID: f.p.ID, PublicKey: "ssh-ed25519 AAAA kozmic", PrivateKey: f.privateKey}); err != nil {
		t.Fatal(err)
	}
	if err := s.db.SetSecret(ctx, f.p.ID, store.Secret{Name: "DEPLOY_TOKEN", Value: f.secretValue}); err != nil {
		t.Fatal(err)
	}
	f.hook, err = s.db.CreateHook(ctx, store.Hook{ProjectID: f.p.ID, Title: xssImg, DockerImage: xssScript,
		InstallScript: "#!/bin/sh\necho " + xssScript + "\n", BuildScript: "#!/bin/sh\necho '" + xssImg + "'\n",
		TrackedFiles: []string{xssScript, xssImg}})
	if err != nil {
		t.Fatal(err)
	}
	var jobs []store.Job
	f.build, jobs, err = s.db.CreateBuild(ctx, store.NewBuild{ProjectID: f.p.ID, Ref: "refs/heads/" + xssImg,
		SHA: "6113728f27ae82c7b1a177c8d03f9e96e0adf246", Author: xssScript, Message: xssImg + "\n\n" + xssScript})
	if err != nil {
		t.Fatal(err)
	}
	f.job = jobs[0]
	if _, err := s.db.AppendLog(ctx, f.job.ID, []byte(hostileLog), false); err != nil {
		t.Fatal(err)
	}
	if res, _ := manager.do("POST", fmt.Sprintf("/projects/%d/builds/%d/jobs/%d/cancel", f.p.ID, f.build.Number, f.job.ID), url.Values{}); res.StatusCode != 303 {
		t.Fatalf("cancel: %d", res.StatusCode)
	}
	s.db.SetUserEmail(ctx, 1, xssImg+"@example.com")
	return f
}

func TestPageEscapesUserText(t *testing.T) {
	f := newHostileFixture(t)
	project := fmt.Sprintf("/projects/%d", f.p.ID)
	build := fmt.Sprintf("%s/builds/%d", project, f.build.Number)
	job := fmt.Sprintf("%s/jobs/%d", build, f.job.ID)
	hook := fmt.Sprintf("%s/hooks/%d", project, f.hook.ID)
	type want struct{ sel, text string } // what the first match's text starts with
	type attrWant struct{ sel, attr, value string }
	for _, tt := range []struct {
		path  string
		texts []want
		attrs []attrWant
	}{
		{"/", []want{{"#" + views.DashboardID + " li a", f.p.FullName}, {"#" + views.DashboardID + " span.branch", xssImg}}, nil},
		{project, []want{{"main > .head h1", f.p.FullName}, {"ul.builds span.branch", xssImg}, {"ul.builds span.message", xssImg},
			{"ul.builds span.meta", xssScript}, {"title", f.p.FullName + " · Kozmic"}}, nil},
		{project + "?branch=" + url.QueryEscape(xssImg), []want{{"ul.builds span.branch", xssImg}},
			[]attrWant{{`input[name="branch"]`, "value", xssImg}}},
		{project + "?branch=" + url.QueryEscape(xssScript), []want{{"section.panel .head + p.muted", "No builds of " + xssScript + "."}},
			[]attrWant{{`input[name="branch"]`, "value", xssScript}}},
		{build, []want{{"p.message", xssImg + "\n\n" + xssScript}, {"#" + views.JobsTableID + " li a", xssImg}, {"main > .head a", f.p.FullName}}, nil},
		{job, []want{{"main > .head h1", xssImg}, {"#" + views.JobHeadID + " > span.muted", "canceled by " + xssImg},
			{"title", xssImg + " · #1 · " + f.p.FullName + " · Kozmic"}}, nil},
		{project + "/settings", []want{{"section.panel li a", xssImg}, {"section.panel li code.muted", xssScript}, {"main > .head a", f.p.FullName}},
			[]attrWant{{"section.panel li form.confirm", "data-confirm", "Delete the hook " + xssImg + "? Past jobs keep their logs."}}},
		{hook, []want{{"main > .head h1", xssImg}, {"textarea#install", "#!/bin/sh\necho " + xssScript + "\n"},
			{"textarea#build", "#!/bin/sh\necho '" + xssImg + "'\n"}, {"textarea#tracked", xssImg + "\n" + xssScript}}, // sorted
			[]attrWant{{"input#title", "value", xssImg}, {"input#image", "value", xssScript}}},
		{project + "/delete", []want{{"main h1", "Delete " + f.p.FullName + "?"}}, nil},
		{"/account", []want{{"p.who strong", xssScript}}, []attrWant{{"input#email", "value", xssImg + "@example.com"}}},
		{"/repositories", nil, nil},
	} {
		doc, body := fetchPage(t, f.owner, tt.path, 200)
		checkInert(t, tt.path, doc, body)
		if a := doc.Find(`header.top a[href="/account"]`); a.Text() != xssScript {
			t.Errorf("%s: account link %q", tt.path, a.Text())
		}
		for _, w := range tt.texts {
			if got := doc.Find(w.sel).First(); !strings.HasPrefix(got.Text(), w.text) {
				t.Errorf("%s: %s = %q, want %q", tt.path, w.sel, got.Text(), w.text)
			}
		}
		for _, w := range tt.attrs {
			if got := attrOf(doc.Find(w.sel).First(), w.attr); got != w.value {
				t.Errorf("%s: %s %s = %q, want %q", tt.path, w.sel, w.attr, got, w.value)
			}
		}
	}
	// The finished job's log, a page of it.
	doc, body := fetchPage(t, f.owner, job+"/log", 200)
	checkLogInert(t, "log page", doc, body)
	if got := doc.Find("#L1").Text(); !strings.Contains(got, "<script>alert('log')</script>") {
		t.Errorf("log page: L1 reads %q", got)
	}
	if lines := doc.Find(logLine); lines.Length() != 5 || lines.Last().Text() != "last line without a newline" {
		t.Errorf("log page: %d lines, the last %q", lines.Length(), lines.Last().Text())
	}
	// The project page's people: the manager's login as text.
	doc, _ = fetchPage(t, f.owner, project, 200)
	var people []string
	people = peopleOf(doc.Find("#" + views.PeopleID + " li"))
	if strings.Join(people, "|") != xssScript+" owner|"+xssImg+" manager" {
		t.Errorf("people %q", people)
	}
	// The end of the log stream too.
	evs := readEvents(t, f.owner, job+"/log/stream", "")
	var all strings.Builder
	for _, e := range evs {
		all.WriteString(e.data)
	}
	stream := parse(t, all.String())
	checkLogInert(t, "log stream", stream, all.String())
	if got := textOf(stream.Find("#" + views.JobHeadID + " > span.muted")); got != "canceled by "+xssImg {
		t.Errorf("end event error %q", got)
	}
}

func TestPageNeverShowsSecrets(t *testing.T) {
	f := newHostileFixture(t)
	project := fmt.Sprintf("/projects/%d", f.p.ID)
	build := fmt.Sprintf("%s/builds/%d", project, f.build.Number)
	job := fmt.Sprintf("%s/jobs/%d", build, f.job.ID)
	token, _ := f.s.db.UserAccessToken(context.Background(), 1)
	if token == "" {
		t.Fatal("the owner has no token to look for")
	}
	secrets := map[string]string{"secret value": f.secretValue, "webhook secret": f.webhookSecret, "private key": "pk-3c59dc048e8850243be8079a5c74d079", "private key header": "PRIVATE KEY", "access token": token}
	for _, path := range []string{"/", "/account", "/repositories", project, project + "/settings", project + "/settings?flash=secret-saved",
		project + "/hooks/new", fmt.Sprintf("%s/hooks/%d", project, f.hook.ID), project + "/delete", build, job, job + "/log"} {
		doc, body := fetchPage(t, f.owner, path, 200)
		for what, v := range secrets {
			if strings.Contains(body, v) || strings.Contains(body, html.EscapeString(v)) || strings.Contains(doc.Text(), v) {
				t.Errorf("%s shows the %s", path, what)
			}
		}
		doc.Find("input").Each(func(_ int, in *goquery.Selection) {
			for what, v := range secrets {
				if strings.Contains(attrOf(in, "value"), v) {
					t.Errorf("%s: an input holds the %s", path, what)
				}
			}
		})
	}
	// The settings list the secret by name only.
	doc, _ := fetchPage(t, f.owner, project+"/settings", 200)
	if got := doc.Find("section.panel").Eq(1).Find("li code").Text(); got != "DEPLOY_TOKEN" {
		t.Errorf("secret names %q", got)
	}
}

// A status badge and the text beside it (a duration, a title, an attempt's
// number) are separate words when the page's text is read without its
// layout: "passed 5s", never "passed5s". A running job's time carries its
// start for kozmic.js to tick from; a finished one's does not.
func TestBadgeAndTimeNeverTouch(t *testing.T) {
	s := newTestServer(t)
	b := newBrowser(t, s)
	ctx := context.Background()
	p := ownedProject(t, s, b, "octocat/Hello-World", 1296269)
	build, first := buildWithLog(t, s, p, "refs/heads/main", "abc", "m", "ok\n", store.JobFailure)
	buildURL := fmt.Sprintf("/projects/%d/builds/%d", p.ID, build.Number)
	if res, _ := b.do("POST", fmt.Sprintf("%s/jobs/%d/restart", buildURL, first.ID), url.Values{}); res.StatusCode != 303 {
		t.Fatalf("restart: %d", res.StatusCode)
	}
	all, _ := s.db.Jobs(ctx, build.ID)
	second := all[1]
	moveJob(t, s, second.ID, store.JobRunning, store.CacheNone)
	second, _ = s.db.JobByID(ctx, second.ID)

	words := func(s *goquery.Selection) string { return strings.Join(strings.Fields(s.Text()), " ") }
	for _, path := range []string{"/", fmt.Sprintf("/projects/%d", p.ID), buildURL,
		fmt.Sprintf("%s/jobs/%d", buildURL, first.ID), fmt.Sprintf("%s/jobs/%d", buildURL, second.ID)} {
		doc, _ := fetchPage(t, b, path, 200)
		badges := doc.Find(".status")
		if badges.Length() == 0 {
			t.Fatalf("%s: no status badge", path)
		}
		// Whatever stands beside a badge in the same parent is set apart
		// from it by white space.
		badges.Each(func(_ int, badge *goquery.Selection) {
			n := badge.Nodes[0]
			if prev := n.PrevSibling; prev != nil && (prev.Type != nethtml.TextNode || strings.TrimRightFunc(prev.Data, unicode.IsSpace) == prev.Data) {
				t.Errorf("%s: the badge %q touches what precedes it in %q", path, words(badge), words(badge.Parent()))
			}
			if next := n.NextSibling; next != nil && (next.Type != nethtml.TextNode || strings.TrimLeftFunc(next.Data, unicode.IsSpace) == next.Data) {
				t.Errorf("%s: the badge %q touches what follows it in %q", path, words(badge), words(badge.Parent()))
			}
		})
	}

	doc, _ := fetchPage(t, b, fmt.Sprintf("%s/jobs/%d", buildURL, first.ID), 200)
	if got := words(doc.Find("#" + views.JobStatusID)); !regexp.MustCompile(`^failed \d+s$`).MatchString(got) {
		t.Errorf("finished job's status reads %q, want \"failed\", a space and its duration", got)
	}
	if tm := doc.Find("#" + views.JobStatusID + " time"); tm.Length() != 1 || !regexp.MustCompile(`^PT\d+S$`).MatchString(attrOf(tm, "datetime")) ||
		tm.AttrOr("data-since", "") != "" {
		t.Errorf("finished job's time: %d, datetime %q, data-since %q", tm.Length(), attrOf(tm, "datetime"), attrOf(tm, "data-since"))
	}
	doc, _ = fetchPage(t, b, fmt.Sprintf("%s/jobs/%d", buildURL, second.ID), 200)
	if got := words(doc.Find("#" + views.JobStatusID)); !regexp.MustCompile(`^running \d+s$`).MatchString(got) {
		t.Errorf("running job's status reads %q, want \"running\", a space and its time so far", got)
	}
	tm := doc.Find("#" + views.JobStatusID + " time[data-since]")
	since, err := time.Parse(time.RFC3339Nano, tm.AttrOr("data-since", ""))
	if tm.Length() != 1 || err != nil || !since.Equal(second.StartedAt.Truncate(time.Millisecond)) {
		t.Errorf("running job's time: %d, data-since %q (%v), want its start %s", tm.Length(), attrOf(tm, "data-since"), err, second.StartedAt)
	}
}

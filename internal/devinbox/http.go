package devinbox

import (
	"encoding/json"
	"html/template"
	"net/http"
	"strings"
)

// Handler serves the inbox:
//
//	GET /dev/inbox              an HTML page listing the messages, newest first
//	GET /dev/inbox.json         the same as {"items": [...]}
//	GET /dev/inbox/{id}/raw     one message's source as received (text/plain)
//	DELETE /dev/inbox           empties the inbox
func (in *Inbox) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /dev/inbox", in.servePage)
	mux.HandleFunc("GET /dev/inbox.json", in.serveJSON)
	mux.HandleFunc("GET /dev/inbox/{id}/raw", in.serveRaw)
	mux.HandleFunc("DELETE /dev/inbox", in.serveClear)
	return mux
}

func (in *Inbox) serveJSON(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(map[string]any{"items": in.Messages()})
}

func (in *Inbox) serveRaw(w http.ResponseWriter, r *http.Request) {
	raw, ok := in.Raw(r.PathValue("id"))
	if !ok {
		http.Error(w, "no such message in the development inbox (it keeps the newest messages, in memory)", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; sandbox")
	_, _ = w.Write(raw)
}

func (in *Inbox) serveClear(w http.ResponseWriter, _ *http.Request) {
	in.mu.Lock()
	in.msgs = nil
	in.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (in *Inbox) servePage(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	_ = pageTemplate.Execute(w, struct {
		Messages []Message
		Addr     string
	}{in.Messages(), in.addr})
}

var pageTemplate = template.Must(template.New("inbox").Funcs(template.FuncMap{
	"join": strings.Join,
}).Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Development inbox · Sendwerk</title>
<style>
body { font: 15px/1.45 system-ui, sans-serif; margin: 2rem; color: #1d2433; }
h1 { font-size: 1.4rem; margin: 0 0 .25rem; }
p.note { color: #5b6475; margin: 0 0 1.5rem; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .5rem .75rem; border-bottom: 1px solid #e3e6ec; vertical-align: top; }
th { font-size: .8rem; text-transform: uppercase; letter-spacing: .04em; color: #5b6475; }
td.time { white-space: nowrap; color: #5b6475; }
.dkim { display: inline-block; padding: .1rem .5rem; border-radius: 999px; font-size: .8rem; font-weight: 600; }
.dkim-pass { background: #dcf5e3; color: #13622f; }
.dkim-fail, .dkim-permerror { background: #fde2e1; color: #8a1c17; }
.dkim-none, .dkim-temperror { background: #eceef2; color: #444c5c; }
.detail { display: block; font-size: .8rem; color: #5b6475; }
.empty { padding: 2rem 0; color: #5b6475; }
</style>
</head>
<body>
<main>
<h1>Development inbox</h1>
<p class="note">Every message Sendwerk delivers through the development relay (SMTP on {{.Addr}}) lands here, newest first, with the DKIM verdict of an independent verifier. Kept in memory; development only. Also as <a href="inbox.json">JSON</a>.</p>
{{if .Messages}}
<table>
<thead><tr><th>Received</th><th>From</th><th>To</th><th>Subject</th><th>DKIM</th><th>Source</th></tr></thead>
<tbody>
{{range .Messages}}
<tr class="message" id="message-{{.ID}}">
<td class="time"><time datetime="{{.ReceivedAt.Format "2006-01-02T15:04:05Z07:00"}}">{{.ReceivedAt.Format "2006-01-02 15:04:05 UTC"}}</time></td>
<td class="from">{{.From}}</td>
<td class="to">{{if .To}}{{.To}}{{else}}{{join .RcptTo ", "}}{{end}}</td>
<td class="subject">{{.Subject}}</td>
<td><span class="dkim dkim-{{.DKIM.Result}}">dkim={{.DKIM.Result}}</span>{{if .DKIM.Domain}}<span class="detail">d={{.DKIM.Domain}}</span>{{end}}{{if .DKIM.Detail}}<span class="detail">{{.DKIM.Detail}}</span>{{end}}</td>
<td><a href="inbox/{{.ID}}/raw">raw</a></td>
</tr>
{{end}}
</tbody>
</table>
{{else}}
<p class="empty">No messages yet. Send one through a <code>platform</code> connector and reload this page.</p>
{{end}}
</main>
</body>
</html>
`))

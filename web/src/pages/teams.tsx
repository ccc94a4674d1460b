// Teams: the list (personal first) with "New team", and a team's page: its members with
// their roles (changed or removed by admins and owners), invitations (a link shown once,
// bound to one user), rename and delete for owners, and leaving.
import { useEffect, useState } from "react";
import { Link, useNavigate, useParams } from "react-router";
import * as api from "../api";
import { Ago, Alert, ConfirmDialog, Dialog, Empty, errorText, Field, formErrors, FormErrors, noErrors, ShownOnce, useToast } from "../ui";

const ROLES = ["viewer", "member", "admin", "owner"];
const rank = (role: string) => ROLES.indexOf(role);
export const ROLE_HELP: Record<string, string> = {
  viewer: "sees projects, logs and metrics",
  member: "also deploys, rolls back, starts and stops apps, creates projects",
  admin: "also changes settings, environment, domains and members",
  owner: "also deletes projects and the team, makes owners, reads the audit log",
};

export default function TeamsPage() {
  const [teams, setTeams] = useState<api.Team[] | null>(null);
  const [error, setError] = useState("");
  const [creating, setCreating] = useState(false);
  const [name, setName] = useState("");
  const [errors, setErrors] = useState<FormErrors>(noErrors);
  const navigate = useNavigate();
  useEffect(() => {
    api.listTeams().then(setTeams, (e) => setError(errorText(e)));
  }, []);
  return (
    <section>
      <div className="page-head">
        <h1>Teams</h1>
        <button className="btn" onClick={() => setCreating(true)}>
          New team
        </button>
      </div>
      <p className="muted small">
        A project belongs to a team; what each member may do follows their role. Your personal team holds the projects you create for
        yourself.
      </p>
      <Alert>{error}</Alert>
      {teams && teams.length === 0 && <Empty title="No teams" />}
      {teams && teams.length > 0 && (
        <table className="table" aria-label="Teams">
          <thead>
            <tr>
              <th>Team</th>
              <th>Your role</th>
              <th>Since</th>
            </tr>
          </thead>
          <tbody>
            {teams.map((t) => (
              <tr key={t.id} data-testid={t.personal ? "team-personal" : `team-${t.slug}`}>
                <td data-label="Team">
                  <Link to={`/teams/${t.id}`}>{t.personal ? `${t.name} (personal)` : t.name}</Link>
                </td>
                <td data-label="Your role">{t.role}</td>
                <td data-label="Since">
                  <Ago at={t.created_at} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <Dialog open={creating} onClose={() => setCreating(false)} title="New team">
        <form
          className="stack"
          onSubmit={async (e) => {
            e.preventDefault();
            setErrors(noErrors);
            try {
              const team = await api.createTeam(name);
              setCreating(false);
              navigate(`/teams/${team.id}`);
            } catch (err) {
              setErrors(formErrors(err));
            }
          }}
        >
          <Field label="Team name" value={name} onChange={(e) => setName(e.target.value)} required error={errors.fields.name} />
          <Alert>{errors.message}</Alert>
          <div className="form-actions">
            <button type="button" className="btn secondary" onClick={() => setCreating(false)}>
              Cancel
            </button>
            <button className="btn">Create team</button>
          </div>
        </form>
      </Dialog>
    </section>
  );
}

export function TeamPage({ me }: { me: api.User }) {
  const { id = "" } = useParams();
  const [team, setTeam] = useState<(api.Team & { members: api.Member[] }) | null>(null);
  const [error, setError] = useState("");
  const [deleting, setDeleting] = useState(false);
  const toast = useToast();
  const navigate = useNavigate();
  const reload = () => api.getTeam(id).then(setTeam, (e) => setError(errorText(e)));
  useEffect(() => {
    reload();
  }, [id]);
  if (!team)
    return error ? (
      <Alert>{error}</Alert>
    ) : (
      <p className="muted" role="status">
        Loading…
      </p>
    );
  const manage = rank(team.role) >= rank("admin");
  const own = team.role === "owner";
  return (
    <section className="stack">
      <div className="page-head">
        <h1>{team.personal ? `${team.name} (personal)` : team.name}</h1>
        <span className="muted">Your role: {team.role}</span>
      </div>
      <Alert>{error}</Alert>
      <section className="card stack" aria-label="Members">
        <h2>Members</h2>
        <table className="table" aria-label="Members of the team">
          <thead>
            <tr>
              <th>User</th>
              <th>Role</th>
              <th>Joined</th>
              <th>
                <span className="sr-only">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {team.members.map((m) => {
              // Admins manage members below admin; owners manage everyone.
              const editable = !team.personal && (own || (manage && rank(m.role) < rank("admin")));
              return (
                <tr key={m.user_id} data-testid={`member-${m.username}`}>
                  <td data-label="User">
                    {m.username} {m.user_id === me.id && <span className="muted small">(you)</span>}
                  </td>
                  <td data-label="Role">
                    {editable ? (
                      <select
                        aria-label={`Role of ${m.username}`}
                        value={m.role}
                        onChange={async (e) => {
                          // Read before awaiting: the controlled select snaps back on re-render.
                          const role = e.target.value;
                          setError("");
                          try {
                            await api.setMemberRole(team.id, m.user_id, role);
                            toast(`${m.username} is now ${role}`, "success");
                          } catch (err) {
                            setError(errorText(err));
                          }
                          await reload();
                        }}
                      >
                        {ROLES.filter((r) => own || rank(r) < rank("admin") || r === m.role).map((r) => (
                          <option key={r} value={r}>
                            {r}
                          </option>
                        ))}
                      </select>
                    ) : (
                      m.role
                    )}
                  </td>
                  <td data-label="Joined">
                    <Ago at={m.joined_at} />
                  </td>
                  <td className="actions">
                    {!team.personal && (editable || m.user_id === me.id) && (
                      <button
                        className="btn danger small"
                        onClick={async () => {
                          setError("");
                          try {
                            await api.removeMember(team.id, m.user_id);
                            if (m.user_id === me.id) {
                              toast(`You left ${team.name}`, "success");
                              navigate("/teams");
                              return;
                            }
                            toast(`${m.username} removed`, "success");
                            await reload();
                          } catch (err) {
                            setError(errorText(err));
                          }
                        }}
                      >
                        {m.user_id === me.id ? "Leave team" : `Remove ${m.username}`}
                      </button>
                    )}
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
        <ul className="small muted">
          {ROLES.map((r) => (
            <li key={r}>
              <strong>{r}</strong>: {ROLE_HELP[r]}
            </li>
          ))}
        </ul>
      </section>
      {manage && !team.personal && <Invitations team={team} canInviteOwners={own} />}
      {own && !team.personal && (
        <section className="card stack danger-zone" aria-label="Danger zone">
          <h2>Danger zone</h2>
          <div className="spread">
            <span className="small">Delete the team. It must hold no projects.</span>
            <button className="btn danger" onClick={() => setDeleting(true)}>
              Delete team
            </button>
          </div>
        </section>
      )}
      <ConfirmDialog
        open={deleting}
        onClose={() => setDeleting(false)}
        title={`Delete ${team.name}?`}
        word={team.slug}
        action="Delete team"
        onConfirm={async () => {
          await api.deleteTeam(team.id);
          navigate("/teams");
        }}
      />
    </section>
  );
}

function Invitations({ team, canInviteOwners }: { team: api.Team; canInviteOwners: boolean }) {
  const [pending, setPending] = useState<api.Invitation[] | null>(null);
  const [username, setUsername] = useState("");
  const [role, setRole] = useState("member");
  const [fresh, setFresh] = useState<api.Invitation | null>(null);
  const [errors, setErrors] = useState<FormErrors>(noErrors);
  const reload = () => api.listInvitations(team.id).then(setPending, (e) => setErrors(formErrors(e)));
  useEffect(() => {
    reload();
  }, [team.id]);
  return (
    <section className="card stack" aria-label="Invitations">
      <h2>Invitations</h2>
      <p className="small muted">An invitation is a link only the named user can use, once, within 72 hours.</p>
      <form
        className="stack"
        onSubmit={async (e) => {
          e.preventDefault();
          setErrors(noErrors);
          try {
            setFresh(await api.invite(team.id, { username, role }));
            setUsername("");
            await reload();
          } catch (err) {
            setErrors(formErrors(err));
          }
        }}
      >
        <div className="form-grid">
          <Field label="Username to invite" value={username} onChange={(e) => setUsername(e.target.value)} required error={errors.fields.username} />
          <div className="field">
            <label htmlFor="invite-role">Role</label>
            <select id="invite-role" value={role} onChange={(e) => setRole(e.target.value)}>
              {ROLES.filter((r) => canInviteOwners || r !== "owner").map((r) => (
                <option key={r} value={r}>
                  {r}
                </option>
              ))}
            </select>
          </div>
        </div>
        <Alert>{errors.message}</Alert>
        <div className="form-actions">
          <button className="btn">Invite</button>
        </div>
      </form>
      {fresh?.url && (
        <ShownOnce
          title={`Send this link to ${fresh.username}; it is shown only once.`}
          secret={fresh.url}
          copyLabel="Copy link"
          testId="new-invitation"
          onDone={() => setFresh(null)}
        />
      )}
      {pending && pending.length > 0 && (
        <table className="table" aria-label="Pending invitations">
          <thead>
            <tr>
              <th>User</th>
              <th>Role</th>
              <th>Expires</th>
              <th>
                <span className="sr-only">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {pending.map((i) => (
              <tr key={i.id} data-testid={`invitation-${i.username}`}>
                <td data-label="User">{i.username}</td>
                <td data-label="Role">{i.role}</td>
                <td data-label="Expires">
                  {new Date(i.expires_at) < new Date() ? "expired" : new Date(i.expires_at).toLocaleString()}
                </td>
                <td className="actions">
                  <button
                    className="btn secondary small"
                    onClick={async () => {
                      try {
                        await api.withdrawInvitation(team.id, i.id);
                        await reload();
                      } catch (err) {
                        setErrors(formErrors(err));
                      }
                    }}
                  >
                    Withdraw
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

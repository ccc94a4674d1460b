import { StrictMode, Suspense, lazy, useEffect, useState } from "react";
import { createRoot } from "react-dom/client";
import { BrowserRouter, Navigate, NavLink, Route, Routes, useLocation, useNavigate } from "react-router";
import * as api from "./api";
import { LoginPage, SetupPage } from "./auth";
import { Bell } from "./notifications";
import { ProjectsPage } from "./pages/projects";
import { Toasts } from "./ui";
import "./style.css";

// Everything past the projects list loads on demand, so the first page stays small.
const ProjectPage = lazy(() => import("./pages/project"));
const DeploymentPage = lazy(() => import("./pages/deployment"));
const AccountPage = lazy(() => import("./pages/account"));
const UsersPage = lazy(() => import("./pages/users"));
const SystemPage = lazy(() => import("./pages/system"));
const ImportPage = lazy(() => import("./pages/import"));
const TeamsPage = lazy(() => import("./pages/teams"));
const TeamPage = lazy(() => import("./pages/teams").then((m) => ({ default: m.TeamPage })));
const AuditPage = lazy(() => import("./pages/audit"));
const NodesPage = lazy(() => import("./pages/nodes"));
const DatabasesPage = lazy(() => import("./pages/databases"));
const InvitationPage = lazy(() => import("./pages/join").then((m) => ({ default: m.InvitationPage })));
const CliApprovePage = lazy(() => import("./pages/join").then((m) => ({ default: m.CliApprovePage })));

/** Signed out: to the login page, remembering where we were going (an invitation link...). */
function ToLogin() {
  const location = useLocation();
  return <Navigate to="/login" state={{ from: location.pathname + location.search }} />;
}

/** Signed in on the login page: on to where we were going. */
function AfterLogin() {
  const from = (useLocation().state as { from?: string } | null)?.from;
  return <Navigate to={from && from.startsWith("/") && !from.startsWith("//") ? from : "/"} />;
}

function App() {
  const [user, setUser] = useState<api.User | null | undefined>(undefined);
  useEffect(() => {
    api.refresh().then(setUser);
  }, []);
  if (user === undefined)
    return (
      <p className="muted center" role="status">
        Loading…
      </p>
    );
  return (
    <Routes>
      <Route path="/setup" element={<SetupPage onDone={setUser} />} />
      <Route path="/login" element={user ? <AfterLogin /> : <LoginPage onDone={setUser} />} />
      <Route path="/*" element={user ? <Shell user={user} onLogout={() => setUser(null)} /> : <ToLogin />} />
    </Routes>
  );
}

function Shell({ user, onLogout }: { user: api.User; onLogout: () => void }) {
  const navigate = useNavigate();
  const admin = user.role === "admin";
  return (
    <Toasts>
      <header className="shell-header">
        <NavLink to="/" className="brand" aria-label="shard home">
          shard
        </NavLink>
        <nav className="nav" aria-label="Main">
          <NavLink to="/" end>
            Projects
          </NavLink>
          <NavLink to="/databases">Databases</NavLink>
          <NavLink to="/teams">Teams</NavLink>
          <NavLink to="/audit">Audit</NavLink>
          <NavLink to="/nodes">Nodes</NavLink>
          {admin && <NavLink to="/admin/users">Users</NavLink>}
          {admin && <NavLink to="/admin/system">System</NavLink>}
          <NavLink to="/account">Account</NavLink>
        </nav>
        <Bell user={user} />
        <span className="muted small" data-testid="whoami">
          {user.username} ({user.role})
        </span>
        <button
          className="btn secondary small"
          onClick={async () => {
            await api.logout();
            onLogout();
            navigate("/login");
          }}
        >
          Sign out
        </button>
      </header>
      <main>
        <Suspense
          fallback={
            <p className="muted" role="status">
              Loading…
            </p>
          }
        >
          <Routes>
            <Route path="/" element={<ProjectsPage />} />
            <Route path="/projects/:id/deployments/:deployment" element={<DeploymentPage />} />
            <Route path="/projects/:id/*" element={<ProjectPage />} />
            <Route path="/account" element={<AccountPage user={user} />} />
            <Route path="/import" element={<ImportPage />} />
            <Route path="/teams" element={<TeamsPage />} />
            <Route path="/teams/:id" element={<TeamPage me={user} />} />
            <Route path="/audit" element={<AuditPage />} />
            <Route path="/nodes" element={<NodesPage admin={admin} />} />
            <Route path="/databases" element={<DatabasesPage />} />
            <Route path="/invitations/:token" element={<InvitationPage me={user} />} />
            <Route path="/cli" element={<CliApprovePage me={user} />} />
            <Route path="/admin/users" element={admin ? <UsersPage me={user} /> : <NotFound />} />
            <Route path="/admin/system" element={admin ? <SystemPage /> : <NotFound />} />
            <Route path="*" element={<NotFound />} />
          </Routes>
        </Suspense>
      </main>
    </Toasts>
  );
}

function NotFound() {
  return (
    <div className="empty">
      <h1>Page not found</h1>
      <p>
        <NavLink to="/">Back to projects</NavLink>
      </p>
    </div>
  );
}

createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <BrowserRouter>
      <App />
    </BrowserRouter>
  </StrictMode>,
);

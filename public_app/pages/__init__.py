"""Hosted pages (issue 22): what a person needs with nothing else deployed — sign up, sign in, sign out, the emailed
verification and invitation links, onboarding (pending invitations, a first organization, a plan), the organization
switcher and dashboards, and Settings → Organization (General, Members, Billing, Developers, Leadsforce).

Server-rendered Django templates with session cookies (CSRF-protected; Secure in production), calling the same
services and selectors as the API, with the same access rule (public_app.access.org_access_check); never an API
layer (an import-linter contract). No JavaScript is needed; a few lines enhance the onboarding form.
`FRONTEND_URL` points the emailed links here unless an external front end takes over.
"""

from django.urls import path

from public_app.pages import account, organization, settings

urlpatterns = [
    path("", account.home),
    path("signin", account.signin),
    path("signup", account.signup),
    path("signout", account.signout),
    path("welcome", account.welcome),
    path("welcome/slug-suggestion", account.slug_suggestion),
    path("welcome/verification", account.verification_resend),
    path("welcome/invitations/<str:uid>/<str:answer>", account.pending_answer),
    path("verify-email/<str:token>", account.verify_email),
    path("invitations/<str:token>", account.invitation),
    path("invitations/<str:token>/<str:answer>", account.invitation_answer),
    path("organizations/<slug:slug>", organization.with_slash),
    path("organizations/<slug:slug>/", organization.dashboard),
    path("organizations/<slug:slug>/invitations", organization.invite),
    path("organizations/<slug:slug>/settings", settings.settings_page),
    path("organizations/<slug:slug>/settings/<str:tab>", settings.settings_page),
    # typed by hand with a trailing slash: the same page
    path("organizations/<slug:slug>/settings/", settings.settings_page),
    path("organizations/<slug:slug>/settings/<str:tab>/", settings.settings_page),
]

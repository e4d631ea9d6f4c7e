from accounts.selectors import memberships_of_user


def acting_organization(request) -> dict:
    """The acting organization and the person's other memberships, for the navigation and the switcher."""
    actor = getattr(request, "actor", None)
    user = getattr(request, "user", None)
    if actor is None or user is None or not user.is_authenticated:
        return {"actor": None, "acting_org": None, "my_memberships": []}
    return {"actor": actor, "acting_org": actor.organization, "my_memberships": memberships_of_user(user)}

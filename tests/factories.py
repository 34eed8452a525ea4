import factory
from django.utils import timezone

from accounts.models import User
from accounts.services import user_signup
from generations.models import GalleryImage, GenerationJob


class UserFactory(factory.django.DjangoModelFactory):
    """A user made the way sign-up makes one: with a personal team they own."""

    class Meta:
        model = User

    username = factory.Sequence(lambda n: f"artist{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.com")

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        return user_signup(
            username=kwargs["username"], email=kwargs["email"], password="a-long-passphrase-42"
        )


class GenerationJobFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = GenerationJob

    created_by = factory.SubFactory(UserFactory)
    team = factory.LazyAttribute(lambda o: o.created_by.current_team)
    engine_id = "stable-diffusion-v1-6"
    prompt = "a lighthouse on a cliff"
    text_prompts = factory.LazyAttribute(lambda o: [{"text": o.prompt, "weight": 1.0}])
    width = 512
    height = 512
    samples = 1


class GalleryImageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = GalleryImage

    job = factory.SubFactory(
        GenerationJobFactory,
        status=GenerationJob.Status.SUCCEEDED,
        finished_at=factory.LazyFunction(timezone.now),
    )
    team = factory.LazyAttribute(lambda o: o.job.team)
    created_by = factory.LazyAttribute(lambda o: o.job.created_by)
    index = factory.Sequence(lambda n: n)
    image = factory.django.ImageField(filename="image.png", width=64, height=64, format="PNG")
    thumbnail = factory.django.ImageField(filename="thumb.jpg", width=32, height=32, format="JPEG")
    width = 512
    height = 512
    seed = factory.Sequence(lambda n: 1000 + n)

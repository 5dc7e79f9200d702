"""Fleet rollouts (fleet/): three new tables, the rollout, its targets and its timeline. New tables
only, whose foreign keys point at each other, so creating them locks nothing that exists. Read and
written in the control database (`default`) only; elsewhere they stay empty."""

import django.db.models.deletion
from django.db import migrations, models

from migrations_worker.operations import Stage


class Migration(migrations.Migration):
    stage = Stage.PRE  # new tables: safe while the previous release runs

    dependencies = [
        ('migrations_worker', '0006_serverslot'),
    ]

    operations = [
        migrations.CreateModel(
            name='Rollout',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('stage', models.CharField(max_length=10)),
                ('status', models.CharField(choices=[('running', 'Running'), ('paused', 'Paused'), ('halted', 'Halted'), ('done', 'Done')], default='running', max_length=10)),
                ('waves_spec', models.CharField(help_text="As asked: '1,25%,100%'.", max_length=200)),
                ('select', models.JSONField(blank=True, default=dict, help_text='Labels a target must have.')),
                ('parallel', models.PositiveSmallIntegerField()),
                ('actor', models.CharField(blank=True, default='', max_length=200)),
                ('error', models.TextField(blank=True, default='')),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('finished_at', models.DateTimeField(blank=True, null=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
            ],
            options={
                'ordering': ['-created_at'],
                'constraints': [models.UniqueConstraint(condition=models.Q(('status__in', ['running', 'paused', 'halted'])), fields=('status',), name='mw_one_open_rollout')],
            },
        ),
        migrations.CreateModel(
            name='RolloutEvent',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('at', models.DateTimeField(auto_now_add=True)),
                ('target', models.CharField(blank=True, default='', max_length=100)),
                ('kind', models.CharField(max_length=20)),
                ('actor', models.CharField(blank=True, default='', max_length=200)),
                ('message', models.TextField(blank=True, default='')),
                ('rollout', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='events', to='migrations_worker.rollout')),
            ],
            options={
                'ordering': ['at', 'id'],
            },
        ),
        migrations.CreateModel(
            name='RolloutTarget',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('target', models.CharField(max_length=100)),
                ('server', models.CharField(blank=True, default='', max_length=200)),
                ('wave', models.PositiveSmallIntegerField(help_text='1 is the canary.')),
                ('position', models.PositiveSmallIntegerField()),
                ('status', models.CharField(choices=[('pending', 'Pending'), ('running', 'Running'), ('waiting', 'Waiting'), ('held', 'Held'), ('passed', 'Passed'), ('failed', 'Failed'), ('skipped', 'Skipped')], default='pending', max_length=10)),
                ('attempt', models.PositiveIntegerField(default=0, help_text='Raised by each start and retry; a step of an older attempt does nothing.')),
                ('steps', models.PositiveIntegerField(default=0)),
                ('detail', models.TextField(blank=True, default='', help_text='What the last step saw.')),
                ('jobs', models.JSONField(blank=True, default=list, help_text='Its data jobs, as last seen.')),
                ('applied', models.JSONField(blank=True, default=list, help_text='Migrations applied by it.')),
                ('error', models.TextField(blank=True, default='')),
                ('reason', models.TextField(blank=True, default='', help_text="An operator's retry or skip.")),
                ('next_step_at', models.DateTimeField(blank=True, null=True)),
                ('started_at', models.DateTimeField(blank=True, null=True)),
                ('finished_at', models.DateTimeField(blank=True, null=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('rollout', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='targets', to='migrations_worker.rollout')),
            ],
            options={
                'ordering': ['rollout', 'wave', 'position'],
                'constraints': [models.UniqueConstraint(fields=('rollout', 'target'), name='mw_rollout_target_uniq')],
            },
        ),
    ]
